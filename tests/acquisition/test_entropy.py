"""Entropy: exact Monte-Carlo means, each prompt scored from its own samples only."""

from __future__ import annotations

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS
from apl.acquisition.entropy import predictive_entropy
from apl.types import Completion

from .scripted_view import Scripted, ScriptedView, prompts


def _c(logp: float, num_tokens: int = 1) -> Completion:
    return Completion(text="", token_ids=(1,) * num_tokens, logp=logp)


def test_predictive_entropy_is_the_mean_negative_logp_hand_computed():
    samples = [[_c(-1.0), _c(-3.0)], [_c(-2.0), _c(-2.0), _c(-8.0)]]
    assert predictive_entropy(samples).tolist() == [2.0, 4.0]
    # per token: -(-4)/2 = 2 and -(-6)/3 = 2, mean 2; unnormalised it would be 5
    normed = [[_c(-4.0, 2), _c(-6.0, 3)]]
    assert predictive_entropy(normed, length_normalize=True).tolist() == [2.0]
    assert predictive_entropy(normed).tolist() == [5.0]


def test_each_prompt_is_scored_from_its_own_samples_only():
    # Prompt i's 8 samples all have log p = -i, so H_i = i exactly. A reshape/transpose slip
    # (the authors' bug) would average across prompts and break this.
    s, n = 5, 8
    samples = [[_c(-float(i)) for _ in range(n)] for i in range(s)]
    assert predictive_entropy(samples).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # Unequal values within prompts: permuting and altering OTHER prompts' samples leaves
    # prompt 2's score unchanged, while prompt 2's own samples do move it.
    rng = np.random.default_rng(0)
    samples = [[_c(float(v)) for v in -rng.uniform(1, 30, n)] for _ in range(s)]
    before = predictive_entropy(samples)
    others = [c for i, own in enumerate(samples) if i != 2 for c in own]
    shuffled = [others[j] for j in rng.permutation(len(others))]
    altered = [[_c(c.logp * 3.0) for c in shuffled[k * n : (k + 1) * n]] for k in range(s - 1)]
    after = predictive_entropy(altered[:2] + [samples[2]] + altered[2:])
    assert after[2] == before[2]
    assert not np.allclose(np.delete(after, 2), np.delete(before, 2))
    moved = predictive_entropy(samples[:2] + [[_c(-100.0)] * n] + samples[3:])
    assert moved[2] == 100.0 and np.array_equal(np.delete(moved, 2), np.delete(before, 2))


def _table(entropies: list[float], n: int = 8) -> dict:
    # Sample log-probs spread around -H with mean exactly -H.
    table = {}
    for i, h in enumerate(entropies):
        offsets = np.linspace(-1.0, 1.0, n)
        table[f"p{i}"] = {
            "samples": [Scripted(-h + o, 2) for o in offsets],
            "a": Scripted(-5.0, 2, -6.0),
            "b": Scripted(-7.0, 2, -6.0),
        }
    return table


def test_entropy_acquire_ranks_prompts_and_generates_pairs_for_the_top_only():
    entropies = [3.0, 9.0, 1.0, 7.0, 5.0, 2.0, 8.0, 4.0]
    view = ScriptedView(_table(entropies), beta=0.5)
    acq = ACQUISITIONS.build("entropy", {"reserve": 0.5})
    pairs = acq.acquire(prompts(8), view, 2, np.random.default_rng(0))
    assert [p.prompt.uid for p in pairs] == ["p1", "p6", "p3"]
    assert [p.score for p in pairs] == pytest.approx([9.0, 8.0, 7.0])
    assert [p.extras["entropy"] for p in pairs] == pytest.approx([9.0, 8.0, 7.0])
    # One entropy call over all prompts at T=1.0 with N=8; pairs (run temperature) for 3 only.
    assert view.sample_calls == [
        ([f"p{i}" for i in range(8)], 8, 1.0),
        (["p1", "p6", "p3"], 2, None),
    ]
    assert view.ref_calls == [6]  # annotation: the kept pairs only
    assert pairs[0].extras["reward_a"] == 0.5 and pairs[0].extras["reward_b"] == -0.5


def test_entropy_options_reach_the_sampler_and_the_estimate():
    view = ScriptedView(_table([1.0, 2.0, 3.0], n=4), is_reference=True)
    acq = ACQUISITIONS.build(
        "entropy", {"num_samples": 4, "temperature": 0.5, "length_normalize": True}
    )
    pairs = acq.acquire(prompts(3), view, 1, np.random.default_rng(0))
    assert view.sample_calls[0][1:] == (4, 0.5)
    assert [p.score for p in pairs] == pytest.approx([1.5, 1.0])  # per token: H / 2 tokens
    assert view.ref_calls == []  # cold start: annotation needs no reference pass
