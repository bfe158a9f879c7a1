"""Refill a round whose ties and INVALID verdicts used up the reserve, so it still ends with M labels.

Each round is meant to add exactly M = `loop.query_size` usable (A/B) labels, so that every
seed of a strategy is evaluated at the same labelled-set sizes. When the ranked candidates
(M plus the reserve) run out first, the round acquires more: a top-up offers fresh prompts in
the round's own proportion (ceil(S x shortfall / M), times J for hybrid), ranks them with the
same acquisition function and the current policy, and appends `shortfall` plus its reserve
to the round's candidates, ranked after the ones already there; labelling then carries on.
Top-ups stop, and the round ends short with a warning, when a top-up yields no usable label
(a judge that cannot answer; more spending would not help), when the round has asked about
twice its planned candidates, or when the pool has too few fresh prompts left. Every choice is
seeded by (seed, round, top-up number), and the number comes from the ledger, so a resumed
run tops up exactly as an unbroken one.
"""

from __future__ import annotations

import logging
import math

from apl.acquisition import Acquisition
from apl.errors import DataError
from apl.loop.components import derive_seed, round_rng, torch_generator
from apl.loop.labelling import USABLE, LabelStats
from apl.loop.offering import PromptOffer
from apl.store.ledger import Ledger

logger = logging.getLogger(__name__)

MAX_ASKED_FACTOR = 2  # a round asks about at most 2x its planned candidates before ending short
EXTRAS_KEY = "top_up"  # candidates' extras: which top-up (1, 2, ...) acquired them


def top_up_round(
    ledger: Ledger,
    round: int,
    stats: LabelStats,
    *,
    acquisition: Acquisition,
    offer: PromptOffer,
    view,
    query_size: int,
    pool_size: int,
    seed: int,
) -> bool:
    """Append one top-up of candidates to `round`; False if the round must end short instead."""
    candidates = ledger.candidates(round)
    verdicts = ledger.verdicts(round)
    done = max((c.pair.extras.get(EXTRAS_KEY, 0) for c in candidates), default=0)
    shortfall = query_size - stats.usable
    planned = acquisition.num_candidates(query_size, acquisition.prompts_needed(pool_size))
    why = None
    if done and not any(
        verdicts[c.id].verdict in USABLE
        for c in candidates
        if c.pair.extras.get(EXTRAS_KEY) == done and c.id in verdicts
    ):
        why = f"top-up {done} got no usable label (is the judge answering?)"
    elif stats.asked >= MAX_ASKED_FACTOR * planned:
        why = f"it has asked about {stats.asked} candidates, {MAX_ASKED_FACTOR}x its plan"
    else:
        number = done + 1
        size = max(shortfall, math.ceil(pool_size * shortfall / query_size))
        exclude = ledger.acquired_prompt_uids() | {c.pair.prompt.uid for c in candidates}
        try:
            prompts = offer(acquisition, size, round_rng(seed, round, f"top-up{number}"), exclude)
        except DataError:
            why = f"the pool has fewer than {size} fresh prompts left"
    if why is not None:
        logger.warning(
            "Round %d ends with %d of %d usable labels (%d ties/invalid): %s. Raise "
            "acquisition.reserve, or check the judge.",
            round,
            stats.usable,
            query_size,
            stats.dropped,
            why,
        )
        return False
    logger.info(
        "Round %d: ties/invalid used up the reserve (%d of %d usable); top-up %d acquires %d "
        "more from %d fresh prompts",
        round,
        stats.usable,
        query_size,
        number,
        shortfall,
        len(prompts),
    )
    view.generator = torch_generator(
        view.generator.device, derive_seed(seed, "sample", round, f"top-up{number}")
    )
    pairs = acquisition.acquire(
        prompts, view, shortfall, round_rng(seed, round, f"top-up{number}-rank"), pool_size=size
    )
    for pair in pairs:
        pair.extras[EXTRAS_KEY] = number
    ledger.add_candidates(round, pairs)
    return True
