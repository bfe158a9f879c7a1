"""The Acquisition ABC, the ACQUISITIONS registry and the PolicyView protocol it scores through.

A strategy overrides one method, `score(pairs, policy, rng)`; `acquire` does the rest:
`propose` candidate pairs (by default one pair per prompt), score them, rank best first with
ties broken at random, and keep `query_size` plus a reserve. The loop labels the first
`query_size` and refills from the reserve, in order, when the oracle returns INVALID.

How many prompts to offer: the loop asks `acquisition.prompts_needed(pool_size)` and passes that
many fresh prompts. Most strategies need `pool_size` (S); `hybrid` needs `entropy_multiplier`
times as many (J x S, paper section 3.1.3) and keeps S of them by entropy itself.
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

    def reference_logps(self, prompts: list[Prompt], completions: list[Completion]) -> list[float]:
        """log p_ref(completion | prompt) for aligned lists; cached, never computed twice."""
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


def implicit_rewards(
    pairs: list[Pair], policy: PolicyView, *, length_normalize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """DPO's implicit rewards (r_a, r_b) = beta * (log p_policy - log p_ref) for each pair.

    Policy log-probs come from generation; reference log-probs from ONE batched
    `policy.reference_logps` call for the pairs still missing them, stored on the Pair
    (`ref_logp_a`, `ref_logp_b`) so training reuses them. With `length_normalize`, each log-prob
    difference is divided by the completion's token count.
    """
    todo = [p for p in pairs if p.ref_logp_a is None or p.ref_logp_b is None]
    if todo:
        ref = policy.reference_logps(
            [p.prompt for p in todo for _ in (0, 1)], [c for p in todo for c in (p.a, p.b)]
        )
        assert len(ref) == 2 * len(todo), "reference_logps must return one value per completion"
        for i, pair in enumerate(todo):
            pair.ref_logp_a, pair.ref_logp_b = float(ref[2 * i]), float(ref[2 * i + 1])
    rewards = []
    for side in ("a", "b"):
        comps = [getattr(p, side) for p in pairs]
        diff = np.array(
            [
                policy_logp(c) - getattr(p, f"ref_logp_{side}")
                for p, c in zip(pairs, comps, strict=True)
            ],
            dtype=np.float64,
        )
        rewards.append(policy.beta * (per_token(diff, comps) if length_normalize else diff))
    return rewards[0], rewards[1]


def attach_rewards(pairs: list[Pair], reward_a: np.ndarray, reward_b: np.ndarray) -> None:
    """Store `reward_a`, `reward_b` and `bt_prob` = P(a > b) = sigmoid(r_a - r_b) in extras."""
    for pair, ra, rb in zip(pairs, reward_a, reward_b, strict=True):
        pair.extras["reward_a"] = float(ra)
        pair.extras["reward_b"] = float(rb)
        pair.extras["bt_prob"] = float(1.0 / (1.0 + math.exp(-(ra - rb))))


def annotate_rewards(pairs: list[Pair], policy: PolicyView) -> None:
    """Attach DPO's (unnormalised) implicit rewards and BT probability to `pairs` only.

    At cold start (`policy.is_reference`) every reward is exactly 0 in theory, so no reference
    pass is made: rewards are 0 and bt_prob is 0.5.
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
        self, prompts: list[Prompt], policy: PolicyView, query_size: int, rng: np.random.Generator
    ) -> list[Pair]:
        """Candidate pairs ranked best first with `score` set; `query_size` plus the reserve."""
        if query_size < 1:
            raise ConfigError(f"query_size ({query_size}) must be >= 1; raise it.")
        if query_size > len(prompts):
            raise ConfigError(
                f"query_size ({query_size}) > prompts offered ({len(prompts)}); "
                "lower query_size or raise pool_size."
            )
        keep = self.num_candidates(query_size, len(prompts))
        pairs = self.propose(prompts, policy, keep, rng)
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
        self, prompts: list[Prompt], policy: PolicyView, keep: int, rng: np.random.Generator
    ) -> list[Pair]:
        """Candidate pairs to score; by default one pair per prompt for every prompt offered."""
        return make_pairs(prompts, policy)

    def finalize(self, chosen: list[Pair], policy: PolicyView) -> None:
        """Hook run on the kept pairs only (e.g. attach rewards); does nothing by default."""
        return None

    @abstractmethod
    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """One score per pair; higher is acquired first."""
