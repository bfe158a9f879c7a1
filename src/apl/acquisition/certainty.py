"""Preference certainty: |r(x, a) - r(x, b)| under DPO's implicit reward (paper section 3.1.2)."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from apl.acquisition.base import (
    ACQUISITIONS,
    Acquisition,
    PolicyView,
    attach_rewards,
    check_option,
    implicit_rewards,
)
from apl.types import Pair

logger = logging.getLogger(__name__)


@ACQUISITIONS.register("certainty")
class CertaintyAcquisition(Acquisition):
    """One pair per prompt; rank by the implicit reward gap |r_a - r_b|.

    Rewards use the policy log-probs returned by generation and the view's cached reference
    log-probs: no other forward pass. `extras` always holds DPO's unnormalised rewards and
    `bt_prob` = sigmoid(r_a - r_b), whatever `length_normalize` does to the score.

    Cold start: while `policy.is_reference` every reward is exactly 0 in theory and any computed
    gap is rounding noise between sampler and scorer. With `cold_start="random"` (default) no
    reference pass is made, every reward and score is 0, and ties are broken uniformly at
    random with the run's rng. `cold_start="compute"` scores the noise anyway.

    Args:
        direction: "most" keeps the largest gaps (the paper); "least" the smallest.
        length_normalize: divide each log-prob difference by the completion's token count.
        cold_start: "random" or "compute", see above.
        reserve: spare pairs kept beyond `query_size`, as a fraction of it.
    """

    def __init__(
        self,
        direction: Literal["most", "least"] = "most",
        length_normalize: bool = False,
        cold_start: Literal["random", "compute"] = "random",
        reserve: float = 0.25,
    ) -> None:
        super().__init__(reserve=reserve)
        check_option(
            direction in ("most", "least"),
            f"acquisition.direction ({direction!r}) must be 'most' or 'least'.",
        )
        check_option(
            cold_start in ("random", "compute"),
            f"acquisition.cold_start ({cold_start!r}) must be 'random' or 'compute'.",
        )
        self.direction = direction
        self.length_normalize = length_normalize
        self.cold_start = cold_start

    @property
    def cold_start_random(self) -> bool:  # type: ignore[override]
        """With cold_start="random" round 1 is a uniform draw: the loop shares random's."""
        return self.cold_start == "random"

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """|r_a - r_b| ("most") or its negative ("least"); zeros at a random cold start."""
        if policy.is_reference and self.cold_start == "random":
            logger.info(
                "certainty: policy equals the reference, all %d gaps are 0; choosing at random",
                len(pairs),
            )
            zeros = np.zeros(len(pairs))
            attach_rewards(pairs, zeros, zeros)
            return zeros
        reward_a, reward_b = implicit_rewards(pairs, policy)
        attach_rewards(pairs, reward_a, reward_b)
        if self.length_normalize:  # reuses the reference log-probs now stored on each pair
            reward_a, reward_b = implicit_rewards(pairs, policy, length_normalize=True)
        gap = np.abs(reward_a - reward_b)
        return gap if self.direction == "most" else -gap
