"""Which fresh prompts the loop offers acquisition each round, and what a short pool means.

A strategy asks for `prompts_needed(S)` prompts (S = `loop.pool_size`; hybrid: J x S). The
loop draws them at random from the train prompts no oracle has seen yet. When fewer than that
are left but at least S, it offers every one of them (logged once per process): hybrid then
ranks them all by entropy and still keeps S, so only its entropy filter gets weaker. Fewer
than S left is an error naming `loop.pool_size`, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import numpy as np

from apl.acquisition import Acquisition
from apl.data import sample_prompts
from apl.errors import DataError
from apl.types import Prompt

logger = logging.getLogger(__name__)


class PromptOffer:
    """Draws each round's fresh prompts for an acquisition from `prompts` (a task's train split).

    Args:
        pool: the pool's name for messages, e.g. `imdb/train`.
    """

    def __init__(self, prompts: Sequence[Prompt], pool: str) -> None:
        self.prompts = prompts
        self.pool = pool
        self._short_logged = False

    def __call__(
        self,
        acquisition: Acquisition,
        pool_size: int,
        rng: np.random.Generator,
        exclude_uids: Collection[str] = (),
    ) -> list[Prompt]:
        """`prompts_needed(pool_size)` fresh prompts, or all that are left if at least `pool_size`."""
        wanted = acquisition.prompts_needed(pool_size)
        excluded = set(exclude_uids)
        left = sum(p.uid not in excluded for p in self.prompts)
        if left < pool_size:
            raise DataError(
                f"`loop.pool_size` ({pool_size}) > unlabelled prompts ({left}) in {self.pool}; "
                "lower it."
            )
        if wanted > left and not self._short_logged:
            self._short_logged = True
            logger.warning(
                "acquisition %s wants %d prompts per round (%d x loop.pool_size %d) but %s has "
                "%d unlabelled; offering all of them each round, of which it keeps %d.",
                acquisition.registry_name,
                wanted,
                acquisition.pool_multiplier,
                pool_size,
                self.pool,
                left,
                pool_size,
            )
        return sample_prompts(
            self.prompts,
            min(wanted, left),
            rng,
            exclude_uids=excluded,
            option="loop.pool_size",
            pool=self.pool,
        )
