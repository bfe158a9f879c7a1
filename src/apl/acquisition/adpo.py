"""Label the uncertain, pseudo-label the confident (ADPO, "RLHF with Active Queries").

Ji, He and Gu, "Reinforcement Learning from Human Feedback with Active Queries" (arXiv
2402.09401; code jkx19/ActiveQuery): DPO's own implicit reward gap |r(x, a) - r(x, b)| measures
how sure the policy is of a pair. ADPO queries a label only where the gap is small and, where it
is large, trains on the policy's own preference sign(r_a - r_b) instead (a pseudo-label), which
matched DPO with about a quarter of the queries on Zephyr models.

In apl's pool-based loop the paid budget per round is fixed (M = `query_size`), so the paid
pairs are the M (+ reserve) LEAST confident of the pool; of the rest, those whose Bradley-Terry
confidence max(p, 1 - p) is at least `confidence` (p = sigmoid(r_a - r_b)) are returned after
them, most confident first, at most `max_pseudo` x M, each marked `extras["pseudo_label"]`
(1.0: a preferred, 0.0: b). The loop never sends a marked pair to the oracle: it records the
policy's preference as a verdict with source "pseudo" (never a paid label, never in spend) and
trains on it with the paid labels. At cold start every gap is 0: no pseudo-labels, and the
paid pairs are a uniform draw (`cold_start_random`).

Pseudo-labels are only as good as the implicit reward's calibration: on apl's offline IMDB
benchmark (a 5M policy) they agreed with the judge at chance and made adpo worse than random
(docs/RESULTS.md). Check a random pilot's calibration table (`apl report`) before using it.
"""

from __future__ import annotations

import math

import numpy as np

from apl.acquisition.base import (
    ACQUISITIONS,
    Acquisition,
    PolicyView,
    attach_rewards,
    check_option,
    implicit_rewards,
    make_pairs,
    rank_descending,
)
from apl.errors import ConfigError
from apl.types import Pair, Prompt

PSEUDO_LABEL = "pseudo_label"  # extras key: 1.0 if a is the policy's choice, 0.0 if b


@ACQUISITIONS.register("adpo")
class ActiveQueryAcquisition(Acquisition):
    """Least-confident pairs for the oracle; confident pairs pseudo-labelled by the policy.

    Args:
        confidence: the Bradley-Terry confidence from which a pair is pseudo-labelled
            (0.9 is an implicit reward gap of 2.2).
        max_pseudo: pseudo-labels per round, as a multiple of `query_size` (bounds training).
        reserve: spare paid pairs kept beyond `query_size`, as a fraction of it.
    """

    cold_start_random = True

    def __init__(
        self, confidence: float = 0.9, max_pseudo: float = 1.0, reserve: float = 0.25
    ) -> None:
        super().__init__(reserve=reserve)
        check_option(
            0.5 < confidence < 1,
            f"acquisition.confidence ({confidence}) must be in (0.5, 1); e.g. 0.9.",
        )
        check_option(max_pseudo >= 0, f"acquisition.max_pseudo ({max_pseudo}) must be >= 0.")
        self.confidence = confidence
        self.max_pseudo = max_pseudo

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """Minus the implicit reward gap: the least confident pair first (0 at cold start)."""
        if policy.is_reference:
            zeros = np.zeros(len(pairs))
            attach_rewards(pairs, zeros, zeros)
            return zeros
        reward_a, reward_b = implicit_rewards(pairs, policy)
        attach_rewards(pairs, reward_a, reward_b)
        return -np.abs(reward_a - reward_b)

    def acquire(
        self,
        prompts: list[Prompt],
        policy: PolicyView,
        query_size: int,
        rng: np.random.Generator,
        *,
        pool_size: int | None = None,
    ) -> list[Pair]:
        """Paid candidates (least confident first), then pseudo-labelled pairs marked as such.

        Every offered prompt gets a pair (`pool_size` is S, which is all of them here).
        """
        if query_size < 1 or query_size > len(prompts):
            raise ConfigError(
                f"query_size ({query_size}) must be between 1 and the prompts offered "
                f"({len(prompts)}); lower query_size or raise pool_size."
            )
        keep = self.num_candidates(query_size, len(prompts))
        pairs = make_pairs(prompts, policy)
        scores = self.score(pairs, policy, rng)
        order = rank_descending(scores, rng)
        paid = []
        for i in order[:keep]:
            pairs[i].score = float(scores[i])
            paid.append(pairs[i])
        pseudo = []
        limit = math.floor(self.max_pseudo * query_size)
        for i in order[keep:][::-1]:  # most confident first
            if len(pseudo) >= limit:
                break
            pair = pairs[i]
            p = pair.extras["bt_prob"]
            if max(p, 1 - p) < self.confidence:
                break
            pair.score = float(scores[i])
            pair.extras[PSEUDO_LABEL] = 1.0 if p > 0.5 else 0.0
            pseudo.append(pair)
        return paid + pseudo
