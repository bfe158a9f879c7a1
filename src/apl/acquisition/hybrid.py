"""Entropy then certainty (paper section 3.1.3): J x S prompts -> top S by entropy -> top M."""

from __future__ import annotations

from typing import Literal

import numpy as np

from apl.acquisition.base import ACQUISITIONS, PolicyView, check_option
from apl.acquisition.certainty import CertaintyAcquisition
from apl.acquisition.entropy import pairs_by_entropy
from apl.types import Pair, Prompt


@ACQUISITIONS.register("hybrid")
class HybridAcquisition(CertaintyAcquisition):
    """Keep the 1/J highest-entropy prompts, one pair each, then rank pairs by certainty.

    The loop passes `prompts_needed(S)` = J x S prompts and `pool_size=S`; entropy keeps S of
    them (never fewer than the pairs it returns; without `pool_size`, ceil(len(prompts) / J)).
    When the pool holds fewer than J x S unlabelled prompts, the loop offers all of them and S
    are still kept: a 22,438-prompt IMDB pool under the paper's J=8, S=4,000 filters by 5.6, not
    8. Each pair carries its prompt's `entropy` and the certainty rewards in `extras`.

    Args:
        entropy_multiplier: J (paper: 8 for IMDB, 4 for TLDR).
        num_samples, entropy_temperature: the entropy estimate's N and T (paper: 8, 1.0).
        direction, length_normalize, cold_start, reserve: as for `certainty`;
            `length_normalize` applies to both scores.
    """

    def __init__(
        self,
        entropy_multiplier: int = 8,
        num_samples: int = 8,
        entropy_temperature: float = 1.0,
        direction: Literal["most", "least"] = "most",
        length_normalize: bool = False,
        cold_start: Literal["random", "compute"] = "random",
        reserve: float = 0.25,
    ) -> None:
        super().__init__(
            direction=direction,
            length_normalize=length_normalize,
            cold_start=cold_start,
            reserve=reserve,
        )
        check_option(
            entropy_multiplier >= 1,
            f"acquisition.entropy_multiplier ({entropy_multiplier}) must be >= 1; paper: 4-8.",
        )
        check_option(
            num_samples >= 1,
            f"acquisition.num_samples ({num_samples}) must be >= 1; the paper uses 8.",
        )
        check_option(
            entropy_temperature > 0,
            f"acquisition.entropy_temperature ({entropy_temperature}) must be > 0; paper: 1.0.",
        )
        self.pool_multiplier = entropy_multiplier
        self.num_samples = num_samples
        self.entropy_temperature = entropy_temperature

    @property
    def cold_start_random(self) -> bool:  # type: ignore[override]
        """Never: at cold start it still keeps the highest-entropy prompts, not a uniform draw."""
        return False

    def propose(
        self,
        prompts: list[Prompt],
        policy: PolicyView,
        keep: int,
        rng: np.random.Generator,
        *,
        pool_size: int,
    ) -> list[Pair]:
        """Entropy-rank every offered prompt; pairs for the top `pool_size` (S) only."""
        return pairs_by_entropy(
            prompts,
            policy,
            pool_size,
            rng,
            num_samples=self.num_samples,
            temperature=self.entropy_temperature,
            length_normalize=self.length_normalize,
        )
