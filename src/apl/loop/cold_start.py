"""Common random numbers for round 1: strategies that choose at random then share one draw.

While the policy equals its reference, certainty (cold_start="random"), bald and adpo have no
information and pick uniformly at random, and so does `random`. If each drew its own pairs,
their round-1 labels (and so every later round) would differ by chance alone; a comparison of
10 seeds once showed certainty 0.06 below random at the first size although both chose at
random (docs/RESULTS.md). So the loop gives every such strategy the random baseline's own
acquisition for that round: the same prompts, completions and order as `random` with the same
seed. Nothing about the rule changes; only its randomness is shared.
"""

from __future__ import annotations

from apl.acquisition import Acquisition
from apl.acquisition.random import RandomAcquisition


def acquisition_for_round(acquisition: Acquisition, is_reference: bool) -> Acquisition:
    """`random`'s acquisition (same reserve) at a cold start the strategy spends at random."""
    if is_reference and acquisition.cold_start_random:
        return RandomAcquisition(reserve=acquisition.reserve)
    return acquisition
