"""The Acquisition ABC, the ACQUISITIONS registry and the PolicyView protocol it scores through.

A strategy overrides one method, `score(pairs, policy, rng)`; `acquire` does the rest:
`propose` candidate pairs (by default one pair per prompt), score them, rank best first with
ties broken at random, and keep `query_size` plus a reserve. The loop labels the first
`query_size` and refills from the reserve, in order, when the oracle returns INVALID.

How many prompts to offer: the loop asks `acquisition.prompts_needed(pool_size)` and passes that
many fresh prompts, with `pool_size=S`. Most strategies need S; `hybrid` needs
`entropy_multiplier` times as many (J x S, paper section 3.1.3) and keeps S of them by entropy
itself. When fewer than J x S unlabelled prompts are left (but at least S), the loop offers all
of them and `hybrid` still keeps S: its entropy stage then filters by less than J.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np

from apl.errors import ConfigError
from apl.registry import Registry
from apl.types import Completion, Pair, Prompt

logger = logging.getLogger(__name__)


@runtime_checkable
class PolicyView(Protocol):
    """What acquisition may ask of the current policy; the loop passes a `ModelPolicyView`."""

    beta: float  # DPO's beta: implicit reward r = beta * (log p_policy - log p_ref)
    is_reference: bool  # True while the policy's weights equal the reference (cold start)

    def sample(
        self, prompts: list[Prompt], num_samples: int, temperature: float | None = None
    ) -> list[list[Completion]]:
        """`num_samples` completions per prompt (None: the run's temperature), each with `logp`.

        `logp` is the summed log-prob under the untempered policy, free from generation.
        """
        ...

    def policy_and_reference_logps(
        self, prompts: list[Prompt], completions: list[Completion]
    ) -> tuple[list[float], list[float]]:
        """(log p_policy, log p_ref) of each aligned (prompt, completion) row.

        Both sides come from the same scoring computation (same batches, same precision), so a
        policy equal to its reference gives equal values; each reference value is computed once.
        """
        ...


ACQUISITIONS: Registry[Acquisition] = Registry("acquisition")


def check_option(ok: bool, message: str) -> None:
    """Raise a one-line ConfigError unless `ok` (for constructor checks)."""
    if not ok:
        raise ConfigError(message)


def policy_logp(completion: Completion) -> float:
    """The sampler's summed log-prob of `completion`; a missing one is a broken PolicyView."""
    if completion.logp is None:
        raise ValueError(
            "PolicyView.sample returned a Completion without logp; the sampler must set it"
        )
    return completion.logp


def per_token(value: np.ndarray, completions: list[Completion]) -> np.ndarray:
    """`value` divided by each completion's token count (at least 1): length normalisation."""
    lengths = np.array([max(c.num_tokens, 1) for c in completions], dtype=np.float64)
    return value / lengths


def make_pairs(prompts: list[Prompt], policy: PolicyView) -> list[Pair]:
    """One pair per prompt: two independent samples at the run's generation temperature."""
    if not prompts:
        return []
    samples = policy.sample(prompts, num_samples=2)
    assert len(samples) == len(prompts), "PolicyView.sample must return one list per prompt"
    return [Pair(prompt=p, a=s[0], b=s[1]) for p, s in zip(prompts, samples, strict=True)]


def rank_descending(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of `scores`, highest first; ties in uniformly random order, never pool order."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("acquisition scores contain NaN; check the log-probs the policy returned")
    shuffled = rng.permutation(len(scores))
    return shuffled[np.argsort(-scores[shuffled], kind="stable")]


def logp_ratios(pairs: list[Pair], policy: PolicyView) -> tuple[np.ndarray, np.ndarray]:
    """log p_policy - log p_ref of each pair's a and b, from ONE batched scoring call.

    Not the sampler's `Completion.logp`: both sides come from the view's scoring, so they are
    the same computation at the same precision (in bf16 the sampler's incremental decoding
    differs from a full forward by up to ~0.1 nats). The reference log-probs are stored on the
    pairs (`ref_logp_a`, `ref_logp_b`) so training reuses them.
    """
    if not pairs:
        return np.zeros(0), np.zeros(0)
    pol, ref = policy.policy_and_reference_logps(
        [p.prompt for p in pairs for _ in (0, 1)], [c for p in pairs for c in (p.a, p.b)]
    )
    assert len(pol) == len(ref) == 2 * len(pairs), "one log-prob per completion and side"
    for i, pair in enumerate(pairs):
        pair.ref_logp_a, pair.ref_logp_b = float(ref[2 * i]), float(ref[2 * i + 1])
    diff = np.asarray(pol, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    return diff[0::2], diff[1::2]


def implicit_rewards(
    pairs: list[Pair], policy: PolicyView, *, length_normalize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """DPO's implicit rewards (r_a, r_b) = beta * (log p_policy - log p_ref) for each pair.

    With `length_normalize`, each log-prob difference is divided by the completion's token count.
    """
    diff_a, diff_b = logp_ratios(pairs, policy)
    if length_normalize:
        diff_a, diff_b = (
            per_token(diff_a, [p.a for p in pairs]),
            per_token(diff_b, [p.b for p in pairs]),
        )
    return policy.beta * diff_a, policy.beta * diff_b


def attach_rewards(pairs: list[Pair], reward_a: np.ndarray, reward_b: np.ndarray) -> None:
    """Store `reward_a`, `reward_b` and `bt_prob` = P(a > b) = sigmoid(r_a - r_b) in extras."""
    for pair, ra, rb in zip(pairs, reward_a, reward_b, strict=True):
        pair.extras["reward_a"] = float(ra)
        pair.extras["reward_b"] = float(rb)
        pair.extras["bt_prob"] = float(1.0 / (1.0 + math.exp(-(ra - rb))))


def annotate_rewards(pairs: list[Pair], policy: PolicyView) -> None:
    """Attach DPO's (unnormalised) implicit rewards and BT probability to `pairs` only.

    At cold start (`policy.is_reference`) every reward is exactly 0, so no scoring pass is
    made: rewards are 0 and bt_prob is 0.5.
    """
    if policy.is_reference:
        zeros = np.zeros(len(pairs))
        attach_rewards(pairs, zeros, zeros)
    else:
        attach_rewards(pairs, *implicit_rewards(pairs, policy))


class Acquisition(ABC):
    """Ranks candidate (prompt, a, b) pairs; subclasses override `score` (and maybe `propose`)."""

    registry_name: str = ""
    pool_multiplier: int = 1  # prompts offered per pair slot; see prompts_needed
    # True if, while the policy equals its reference (round 1), this rule has no information
    # and chooses uniformly at random. The loop then draws that round from the random
    # baseline's own stream, so every such strategy labels the same first pairs as `random`
    # with the same seed (common random numbers: the comparison loses round-1 noise).
    cold_start_random: bool = False

    def __init__(self, *, reserve: float = 0.25) -> None:
        check_option(
            reserve >= 0,
            f"acquisition.reserve ({reserve}) must be >= 0; e.g. 0.25 keeps 25% spare pairs.",
        )
        self.reserve = reserve

    def prompts_needed(self, pool_size: int) -> int:
        """How many fresh prompts the loop should pass to `acquire` for a pool of S prompts."""
        return pool_size * self.pool_multiplier

    def num_candidates(self, query_size: int, num_prompts: int) -> int:
        """Pairs `acquire` returns: `query_size` plus the reserve, at most one per prompt."""
        return min(num_prompts, query_size + math.ceil(self.reserve * query_size))

    def acquire(
        self,
        prompts: list[Prompt],
        policy: PolicyView,
        query_size: int,
        rng: np.random.Generator,
        *,
        pool_size: int | None = None,
    ) -> list[Pair]:
        """Candidate pairs ranked best first with `score` set; `query_size` plus the reserve.

        `pool_size` is S, the prompts the last ranking stage sees (hybrid: how many entropy
        keeps); None means len(prompts) / pool_multiplier, rounded up.
        """
        if query_size < 1:
            raise ConfigError(f"query_size ({query_size}) must be >= 1; raise it.")
        if query_size > len(prompts):
            raise ConfigError(
                f"query_size ({query_size}) > prompts offered ({len(prompts)}); "
                "lower query_size or raise pool_size."
            )
        keep = self.num_candidates(query_size, len(prompts))
        if pool_size is None:
            pool_size = math.ceil(len(prompts) / self.pool_multiplier)
        pool_size = min(max(pool_size, keep), len(prompts))
        pairs = self.propose(prompts, policy, keep, rng, pool_size=pool_size)
        scores = np.asarray(self.score(pairs, policy, rng), dtype=np.float64)
        assert scores.shape == (len(pairs),), (
            f"score() returned shape {scores.shape} for {len(pairs)} pairs"
        )
        chosen = []
        for i in rank_descending(scores, rng)[:keep]:
            pairs[i].score = float(scores[i])
            chosen.append(pairs[i])
        self.finalize(chosen, policy)
        logger.debug(
            "%s kept %d of %d candidate pairs", self.registry_name, len(chosen), len(pairs)
        )
        return chosen

    def propose(
        self,
        prompts: list[Prompt],
        policy: PolicyView,
        keep: int,
        rng: np.random.Generator,
        *,
        pool_size: int,
    ) -> list[Pair]:
        """Candidate pairs to score; by default one pair per prompt for every prompt offered.

        `keep` pairs will be kept; `pool_size` (keep <= it <= len(prompts)) is S, see `acquire`.
        """
        return make_pairs(prompts, policy)

    def finalize(self, chosen: list[Pair], policy: PolicyView) -> None:
        """Hook run on the kept pairs only (e.g. attach rewards); does nothing by default."""
        return None

    @abstractmethod
    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """One score per pair; higher is acquired first."""
