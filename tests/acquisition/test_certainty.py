"""Certainty: hand-computed reward gaps, both directions, normalisation, the cold start."""

from __future__ import annotations

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS

from .scripted_view import Scripted, ScriptedView, prompts

# beta 0.5. p0: r_a = .5*(−10+11) = .5, r_b = .5*(−12+10) = −1, gap 1.5 (tokens 2 / 4)
#           p1: r_a = .5*(−4+8)  = 2,  r_b = .5*(−9+9)   = 0,  gap 2.0 (tokens 8 / 8)
#           p2: r_a = .5*(−3+3)  = 0,  r_b = .5*(−3+3.2) = .1, gap 0.1 (tokens 1 / 1)
TABLE = {
    "p0": {"a": Scripted(-10.0, 2, -11.0), "b": Scripted(-12.0, 4, -10.0)},
    "p1": {"a": Scripted(-4.0, 8, -8.0), "b": Scripted(-9.0, 8, -9.0)},
    "p2": {"a": Scripted(-3.0, 1, -3.0), "b": Scripted(-3.0, 1, -3.2)},
}


def _acquire(view, query_size=3, **kwargs):
    acq = ACQUISITIONS.build("certainty", {"reserve": 0.0, **kwargs})
    return acq.acquire(prompts(3), view, query_size, np.random.default_rng(0))


def test_most_certain_first_with_rewards_and_bt_prob():
    view = ScriptedView(TABLE, beta=0.5)
    pairs = _acquire(view)
    assert [p.prompt.uid for p in pairs] == ["p1", "p0", "p2"]
    assert [p.score for p in pairs] == pytest.approx([2.0, 1.5, 0.1])
    p0 = pairs[1]
    assert (p0.extras["reward_a"], p0.extras["reward_b"]) == (0.5, -1.0)
    assert p0.extras["bt_prob"] == pytest.approx(1 / (1 + np.exp(-1.5)))
    assert (p0.ref_logp_a, p0.ref_logp_b) == (-11.0, -10.0)  # kept for training
    assert view.sample_calls == [(["p0", "p1", "p2"], 2, None)]
    assert view.ref_calls == [6]  # one batched call, each completion once


def test_least_certain_direction_reverses_the_order():
    pairs = _acquire(ScriptedView(TABLE, beta=0.5), query_size=2, direction="least")
    assert [p.prompt.uid for p in pairs] == ["p2", "p0"]
    assert [p.score for p in pairs] == pytest.approx([-0.1, -1.5])


def test_length_normalisation_changes_the_ranking_not_the_extras():
    # per token: p0 gap |.5/2 - (-1)/4| = .5; p1 gap |2/8 - 0| = .25; p2 gap .1
    view = ScriptedView(TABLE, beta=0.5)
    pairs = _acquire(view, length_normalize=True)
    assert [p.prompt.uid for p in pairs] == ["p0", "p1", "p2"]
    assert [p.score for p in pairs] == pytest.approx([0.5, 0.25, 0.1])
    assert pairs[0].extras["reward_b"] == -1.0  # DPO's unnormalised reward for Figure 3
    assert view.ref_calls == [6]


def test_cold_start_makes_no_reference_pass_and_picks_uniformly_at_random(caplog):
    table = {
        f"p{i}": {"a": Scripted(-1.0 * i, 1, 5.0), "b": Scripted(-2.0, 1, 9.0)} for i in range(12)
    }
    acq = ACQUISITIONS.build("certainty", {"reserve": 0.0})
    firsts = set()
    for seed in range(20):
        view = ScriptedView(table, is_reference=True)
        with caplog.at_level("INFO", logger="apl.acquisition"):
            pairs = acq.acquire(prompts(12), view, 3, np.random.default_rng(seed))
        assert view.ref_calls == []
        assert [p.score for p in pairs] == [0.0, 0.0, 0.0]
        assert all(p.extras["bt_prob"] == 0.5 and p.ref_logp_a is None for p in pairs)
        firsts.add(pairs[0].prompt.uid)
    assert len(firsts) >= 6  # not pool order: ties go to the rng
    assert "policy equals the reference" in caplog.text


def test_cold_start_compute_scores_the_numbers_anyway():
    view = ScriptedView(TABLE, beta=0.5, is_reference=True)
    pairs = _acquire(view, cold_start="compute")
    assert [p.prompt.uid for p in pairs] == ["p1", "p0", "p2"] and view.ref_calls == [6]
