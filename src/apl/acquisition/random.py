"""The baseline: pairs for randomly chosen prompts, in random order."""

from __future__ import annotations

import numpy as np

from apl.acquisition.base import (
    ACQUISITIONS,
    Acquisition,
    PolicyView,
    annotate_rewards,
    make_pairs,
)
from apl.types import Pair, Prompt


@ACQUISITIONS.register("random")
class RandomAcquisition(Acquisition):
    """Uniformly random prompts; only `query_size` plus the reserve pairs are ever generated.

    Args:
        reserve: spare pairs kept beyond `query_size`, as a fraction of it (refills INVALIDs).
        annotate: attach implicit rewards and `bt_prob` to the kept pairs only (paper Figure 3
            shows them for random too); costs one reference pass per kept completion, none at
            cold start.
    """

    cold_start_random = True

    def __init__(self, reserve: float = 0.25, annotate: bool = True) -> None:
        super().__init__(reserve=reserve)
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
        """Pairs for `keep` prompts drawn without replacement, not for the whole pool."""
        picked = rng.choice(len(prompts), size=keep, replace=False)
        return make_pairs([prompts[i] for i in picked], policy)

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """Uniform draws from `rng`: the ranking is a random permutation."""
        return rng.random(len(pairs))

    def finalize(self, chosen: list[Pair], policy: PolicyView) -> None:
        """Attach rewards to the kept pairs when `annotate` is on."""
        if self.annotate:
            annotate_rewards(chosen, policy)
