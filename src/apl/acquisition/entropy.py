"""Predictive entropy: prompts whose completions the policy is least sure of come first."""

from __future__ import annotations

import logging

import numpy as np

from apl.acquisition.base import (
    ACQUISITIONS,
    Acquisition,
    PolicyView,
    annotate_rewards,
    check_option,
    make_pairs,
    per_token,
    policy_logp,
    rank_descending,
)
from apl.types import Completion, Pair, Prompt

logger = logging.getLogger(__name__)


def predictive_entropy(
    samples: list[list[Completion]], *, length_normalize: bool = False
) -> np.ndarray:
    """Per prompt, the Monte-Carlo entropy estimate: mean over ITS OWN samples of -log p(y|x).

    `samples[i]` are prompt i's completions and only they enter score i (the authors' code
    averaged a slice holding other prompts' samples). With `length_normalize`, each -log p is
    divided by that completion's token count first.

    The log-probs are the sampler's own (`Completion.logp`), not a scoring pass: entropy is one
    model's quantity, not a difference of two that should cancel, the sampler's bf16 rounding
    (~0.03 nats per sequence against a full forward) is averaged over N samples and small next
    to -log p itself (tens of nats), and a scoring pass would cost N x J x S extra sequences
    (256,000 per round for the paper's hybrid).
    """
    entropies = np.empty(len(samples), dtype=np.float64)
    for i, own in enumerate(samples):
        if not own:
            raise ValueError(f"prompt {i} has no samples; entropy needs num_samples >= 1")
        nll = -np.array([policy_logp(c) for c in own], dtype=np.float64)
        entropies[i] = (per_token(nll, own) if length_normalize else nll).mean()
    return entropies


def pairs_by_entropy(
    prompts: list[Prompt],
    policy: PolicyView,
    count: int,
    rng: np.random.Generator,
    *,
    num_samples: int,
    temperature: float,
    length_normalize: bool,
) -> list[Pair]:
    """Rank `prompts` by entropy; one pair each (run temperature) for the top `count` only.

    Each pair's `extras["entropy"]` holds its prompt's entropy.
    """
    samples = policy.sample(prompts, num_samples=num_samples, temperature=temperature)
    assert len(samples) == len(prompts), "PolicyView.sample must return one list per prompt"
    entropies = predictive_entropy(samples, length_normalize=length_normalize)
    top = rank_descending(entropies, rng)[:count]
    pairs = make_pairs([prompts[i] for i in top], policy)
    for pair, i in zip(pairs, top, strict=True):
        pair.extras["entropy"] = float(entropies[i])
    logger.debug(
        "entropy: kept %d of %d prompts (max %.3f)", len(top), len(prompts), entropies.max()
    )
    return pairs


@ACQUISITIONS.register("entropy")
class EntropyAcquisition(Acquisition):
    """Highest predictive entropy first (paper section 3.1.1); pairs only for the kept prompts.

    Args:
        num_samples: Monte-Carlo samples per prompt (paper: N=8).
        temperature: sampling temperature of those samples (paper: 1.0, i.e. the policy itself).
        length_normalize: average -log p per token rather than per sequence.
        reserve: spare pairs kept beyond `query_size`, as a fraction of it.
        annotate: attach implicit rewards and `bt_prob` to the kept pairs (reference passes
            for those pairs only; none at cold start).
    """

    def __init__(
        self,
        num_samples: int = 8,
        temperature: float = 1.0,
        length_normalize: bool = False,
        reserve: float = 0.25,
        annotate: bool = True,
    ) -> None:
        super().__init__(reserve=reserve)
        check_option(
            num_samples >= 1,
            f"acquisition.num_samples ({num_samples}) must be >= 1; the paper uses 8.",
        )
        check_option(
            temperature > 0,
            f"acquisition.temperature ({temperature}) must be > 0; the paper uses 1.0.",
        )
        self.num_samples = num_samples
        self.temperature = temperature
        self.length_normalize = length_normalize
        self.annotate = annotate

    def propose(
        self,
        prompts: list[Prompt],
        policy: PolicyView,
        keep: int,
        rng: np.random.Generator,
        *,
        pool_size: int,
    ) -> list[Pair]:
        """Entropy-rank all prompts, then generate pairs for the top `keep` only."""
        return pairs_by_entropy(
            prompts,
            policy,
            keep,
            rng,
            num_samples=self.num_samples,
            temperature=self.temperature,
            length_normalize=self.length_normalize,
        )

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """The entropy of each pair's prompt, computed in `propose`."""
        return np.array([p.extras["entropy"] for p in pairs], dtype=np.float64)

    def finalize(self, chosen: list[Pair], policy: PolicyView) -> None:
        """Attach rewards to the kept pairs when `annotate` is on."""
        if self.annotate:
            annotate_rewards(chosen, policy)
