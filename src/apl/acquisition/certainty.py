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
    logp_ratios,
    per_token,
)
from apl.types import Pair

logger = logging.getLogger(__name__)


@ACQUISITIONS.register("certainty")
class CertaintyAcquisition(Acquisition):
    """One pair per prompt; rank by the implicit reward gap |r_a - r_b|.

    Rewards come from one scoring pass of the policy and the reference over the same batches
    at the same precision (`PolicyView.policy_and_reference_logps`; each reference log-prob is
    computed once and kept for training). `extras` always holds DPO's unnormalised rewards and
    `bt_prob` = sigmoid(r_a - r_b), whatever `length_normalize` does to the score.

    Cold start: while `policy.is_reference` every reward is 0. With `cold_start="random"`
    (default) no scoring pass is made, every reward and score is 0, and ties are broken
    uniformly at random with the run's rng. `cold_start="compute"` runs the passes anyway;
    the rewards then come out exactly 0 (same computation on both sides), so the ranking is
    the same rng tie-break at the cost of the passes.

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
        diff_a, diff_b = logp_ratios(pairs, policy)  # one scoring pass for both scores
        attach_rewards(pairs, policy.beta * diff_a, policy.beta * diff_b)
        if self.length_normalize:
            diff_a = per_token(diff_a, [p.a for p in pairs])
            diff_b = per_token(diff_b, [p.b for p in pairs])
        gap = policy.beta * np.abs(diff_a - diff_b)
        return gap if self.direction == "most" else -gap
