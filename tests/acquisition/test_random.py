"""Random: only query_size + reserve pairs are generated; rewards only for those."""

from __future__ import annotations

import numpy as np

from apl.acquisition import ACQUISITIONS

from .scripted_view import Scripted, ScriptedView, prompts


def _table(n):
    return {
        f"p{i}": {"a": Scripted(-1.0 - i, 1, -2.0), "b": Scripted(-3.0, 1, -1.0)} for i in range(n)
    }


def test_random_generates_and_annotates_only_the_kept_pairs():
    view = ScriptedView(_table(40), beta=0.5)
    pairs = ACQUISITIONS.build("random", {"reserve": 0.5}).acquire(
        prompts(40), view, 4, np.random.default_rng(0)
    )
    assert len(pairs) == 6
    assert len(view.sample_calls) == 1 and len(view.sample_calls[0][0]) == 6
    assert view.ref_calls == [12]
    assert len({p.prompt.uid for p in pairs}) == 6
    scores = [p.score for p in pairs]
    assert scores == sorted(scores, reverse=True)
    for p in pairs:  # hand-computed: r_a = 0.5 * (-1 - i + 2), r_b = 0.5 * (-3 + 1)
        i = int(p.prompt.uid[1:])
        assert p.extras["reward_a"] == 0.5 * (1.0 - i) and p.extras["reward_b"] == -1.0
        assert np.isclose(p.extras["bt_prob"], 1 / (1 + np.exp(-(0.5 * (1.0 - i) + 1.0))))


def test_random_depends_on_rng_and_annotation_is_optional():
    picks = set()
    for seed in range(10):
        view = ScriptedView(_table(40))
        pairs = ACQUISITIONS.build("random", {"annotate": False}).acquire(
            prompts(40), view, 2, np.random.default_rng(seed)
        )
        picks.add(tuple(p.prompt.uid for p in pairs))
        assert view.ref_calls == [] and "bt_prob" not in pairs[0].extras
    assert len(picks) == 10
    view = ScriptedView(_table(40))
    a = ACQUISITIONS.build("random").acquire(prompts(40), view, 2, np.random.default_rng(3))
    b = ACQUISITIONS.build("random").acquire(prompts(40), view, 2, np.random.default_rng(3))
    assert [p.prompt.uid for p in a] == [p.prompt.uid for p in b]


def test_random_cold_start_annotates_without_reference_passes():
    view = ScriptedView(_table(10), is_reference=True)
    pairs = ACQUISITIONS.build("random").acquire(prompts(10), view, 4, np.random.default_rng(0))
    assert view.ref_calls == []
    assert all(p.extras == {"reward_a": 0.0, "reward_b": 0.0, "bt_prob": 0.5} for p in pairs)
