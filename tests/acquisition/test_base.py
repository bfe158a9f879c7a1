"""The shared machinery: ranking and ties, reserve size, reward arithmetic, option errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS
from apl.acquisition.base import implicit_rewards, rank_descending
from apl.errors import ConfigError
from apl.types import Pair

from .scripted_view import Scripted, ScriptedView, prompts


def test_rank_descending_sorts_and_breaks_ties_at_random():
    scores = np.array([0.1, 3.0, 2.0, 0.5])
    assert rank_descending(scores, np.random.default_rng(0)).tolist() == [1, 2, 3, 0]
    # All tied: a permutation that depends on the rng, not the pool order.
    firsts = {int(rank_descending(np.zeros(8), np.random.default_rng(s))[0]) for s in range(30)}
    assert len(firsts) >= 5
    order = rank_descending(np.zeros(8), np.random.default_rng(1))
    assert sorted(order.tolist()) == list(range(8))
    assert order.tolist() == rank_descending(np.zeros(8), np.random.default_rng(1)).tolist()
    # Partial tie: the tied pair is shuffled, the rest keeps its rank.
    tops = {
        tuple(rank_descending(np.array([1.0, 5.0, 5.0]), np.random.default_rng(s)))
        for s in range(20)
    }
    assert tops == {(1, 2, 0), (2, 1, 0)}
    with pytest.raises(ValueError, match="NaN"):
        rank_descending(np.array([1.0, np.nan]), np.random.default_rng(0))


def test_implicit_rewards_hand_computed_and_reference_kept():
    # beta 0.5; a: policy -10 ref -11 (2 tokens); b: policy -12 ref -10 (4 tokens)
    table = {"p0": {"a": Scripted(-10.0, 2, -11.0), "b": Scripted(-12.0, 4, -10.0)}}
    view = ScriptedView(table, beta=0.5)
    (p,) = prompts(1)
    a, b = view.sample([p], num_samples=2)[0]
    pair = Pair(prompt=p, a=a, b=b)
    ra, rb = implicit_rewards([pair], view)
    assert (ra[0], rb[0]) == (0.5, -1.0)
    assert (pair.ref_logp_a, pair.ref_logp_b) == (-11.0, -10.0)
    assert view.ref_calls == [2]  # one scoring call for both completions
    ra, rb = implicit_rewards([pair], view, length_normalize=True)
    assert (ra[0], rb[0]) == (0.25, -0.25)


@pytest.mark.parametrize("name", ["random", "entropy", "certainty", "hybrid"])
def test_reserve_and_pool_size_errors(name):
    acq = ACQUISITIONS.build(name, {"reserve": 0.25})
    assert acq.num_candidates(query_size=8, num_prompts=100) == 10
    assert acq.num_candidates(query_size=8, num_prompts=9) == 9
    assert acq.num_candidates(query_size=1, num_prompts=100) == 2  # ceil, so a reserve exists
    view = ScriptedView({})
    with pytest.raises(
        ConfigError, match=r"query_size \(5\) > prompts offered \(3\); lower query_size"
    ):
        acq.acquire(prompts(3), view, 5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"reserve \(-1\) must be >= 0"):
        ACQUISITIONS.build(name, {"reserve": -1})


def test_option_errors_name_option_and_value():
    with pytest.raises(
        ConfigError,
        match=r"Unknown acquisition 'coreset'\. Available: adpo, bald, balpm, certainty, entropy, hybrid, random\.",
    ):
        ACQUISITIONS.get("coreset")
    with pytest.raises(ConfigError, match=r"acquisition 'random' has no option 'num_samples'"):
        ACQUISITIONS.build("random", {"num_samples": 8})
    with pytest.raises(
        ConfigError, match=r"acquisition.direction \('most certain'\) must be 'most' or 'least'"
    ):
        ACQUISITIONS.build("certainty", {"direction": "most certain"})
    with pytest.raises(ConfigError, match=r"acquisition.cold_start \('skip'\)"):
        ACQUISITIONS.build("hybrid", {"cold_start": "skip"})
    with pytest.raises(ConfigError, match=r"acquisition.num_samples \(0\) must be >= 1"):
        ACQUISITIONS.build("entropy", {"num_samples": 0})
    with pytest.raises(ConfigError, match=r"acquisition.entropy_multiplier \(0\)"):
        ACQUISITIONS.build("hybrid", {"entropy_multiplier": 0})


def test_prompts_needed_tells_the_loop_the_pool_to_offer():
    assert ACQUISITIONS.build("certainty").prompts_needed(512) == 512
    assert ACQUISITIONS.build("random").prompts_needed(512) == 512
    assert ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4}).prompts_needed(512) == 2048
    assert math.isclose(ACQUISITIONS.build("hybrid").pool_multiplier, 8)
