"""Hybrid: J x S prompts -> top S by entropy -> one pair each -> top M by certainty."""

from __future__ import annotations

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS

from .scripted_view import Scripted, ScriptedView, prompts


def test_hybrid_filters_by_entropy_then_ranks_by_certainty():
    # 8 prompts, J = 4 -> the 2 highest-entropy prompts (p5: H 6, p2: H 5) get pairs.
    # Their gaps: p5 .5*|1 - 0| = .5, p2 .5*|4 - 0| = 2, so p2 comes first.
    # p0 has the largest gap of all (10) but low entropy: it must not be generated.
    entropies = [1.0, 0.5, 5.0, 2.0, 0.1, 6.0, 3.0, 0.2]
    gaps = {0: 10.0, 2: 4.0, 5: 1.0}
    table = {
        f"p{i}": {
            "samples": [Scripted(-h - 1, 2), Scripted(-h + 1, 2)],
            "a": Scripted(-5.0 + gaps.get(i, 0.0), 2, -5.0),
            "b": Scripted(-5.0, 2, -5.0),
        }
        for i, h in enumerate(entropies)
    }
    view = ScriptedView(table, beta=0.5)
    acq = ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4, "num_samples": 2, "reserve": 0.0})
    assert acq.prompts_needed(2) == 8
    pairs = acq.acquire(prompts(8), view, 1, np.random.default_rng(0))
    assert [p.prompt.uid for p in pairs] == ["p2"]
    assert pairs[0].score == pytest.approx(2.0)
    assert pairs[0].extras["entropy"] == pytest.approx(5.0)
    assert view.sample_calls == [([f"p{i}" for i in range(8)], 2, 1.0), (["p5", "p2"], 2, None)]
    assert view.ref_calls == [4]

    # With the reserve, both surviving pairs come back, best first.
    view = ScriptedView(table, beta=0.5)
    acq = ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4, "num_samples": 2})
    pairs = acq.acquire(prompts(8), view, 1, np.random.default_rng(0))
    assert [p.prompt.uid for p in pairs] == ["p2", "p5"]


def test_hybrid_cold_start_picks_among_high_entropy_prompts_without_reference_passes():
    entropies = [float(i) for i in range(16)]
    table = {
        f"p{i}": {"samples": [Scripted(-h, 1)] * 8, "a": Scripted(-1.0), "b": Scripted(-2.0)}
        for i, h in enumerate(entropies)
    }
    seen = set()
    for seed in range(10):
        view = ScriptedView(table, is_reference=True)
        pairs = ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4, "reserve": 0.0}).acquire(
            prompts(16), view, 2, np.random.default_rng(seed)
        )
        assert view.ref_calls == []
        uids = {p.prompt.uid for p in pairs}
        assert uids <= {"p12", "p13", "p14", "p15"}
        seen |= uids
    assert seen == {"p12", "p13", "p14", "p15"}
