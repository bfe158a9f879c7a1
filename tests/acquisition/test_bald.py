"""bald and balpm: an ensemble is unsure where no label has looked; diversity spreads the batch."""

from __future__ import annotations

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS
from apl.acquisition.bald import binary_entropy, ensemble_probs
from apl.acquisition.balpm import greedy_order

from .feature_view import FeatureView, labelled_pairs, scripted_table
from .scripted_view import prompts


def _view(n: int, labels: int, seed: int = 0) -> FeatureView:
    """Labels all along feature 0; candidate p_i differs along feature i % 2 (0: seen, 1: not)."""
    rng = np.random.default_rng(seed)
    view = FeatureView(scripted_table(n), beta=1.0, is_reference=False)
    labelled_pairs(np.array([2.0, 0.0, 0.0, 0.0]), labels, rng, view)
    for i in range(n):
        base = rng.normal(size=4)
        axis = np.eye(4)[i % 2] * 2.0
        view.completion_features[f"p{i}|a"] = base + axis
        view.completion_features[f"p{i}|b"] = base
        view.prompt_vectors[f"p{i}"] = rng.normal(size=4)
    return view


def test_bald_is_high_where_the_labels_never_looked_and_low_where_they_agree():
    view = _view(20, labels=40)
    acq = ACQUISITIONS.build("bald", {"reserve": 0.0, "components": 4})
    pairs = acq.acquire(prompts(20), view, 10, np.random.default_rng(1))
    assert sorted(int(p.prompt.uid[1:]) % 2 for p in pairs) == [1] * 10  # the unseen direction
    seen = [p for p in pairs if p.extras["bald"] < 0.05]
    assert not seen  # every kept pair is one the ensemble disagrees on
    for pair in pairs:  # extras for the report: BALD, ensemble mean, and DPO's rewards
        assert {"bald", "ensemble_prob", "reward_a", "reward_b", "bt_prob"} <= set(pair.extras)
    assert view.feature_calls == 1  # candidates and labels in one batched call


def test_members_agree_along_labelled_directions_and_bald_matches_its_definition():
    rng = np.random.default_rng(0)
    labelled = np.tile([[3.0, 0.0]], (50, 1)) + 0.1 * rng.normal(size=(50, 2))
    candidates = np.array([[3.0, 0.0], [0.0, 3.0]])
    probs = ensemble_probs(labelled, candidates, rng, ensemble_size=16, l2=1.0)
    assert probs.shape == (16, 2)
    assert probs[:, 0].min() > 0.95  # every member knows the labelled direction
    assert probs[:, 1].std() > 0.2  # and keeps the prior's disagreement on the other one
    bald = binary_entropy(probs.mean(0)) - binary_entropy(probs).mean(0)
    assert bald[1] > bald[0] >= 0 and bald[1] <= np.log(2)


def test_bald_without_labels_is_random_and_declares_it():
    view = _view(12, labels=0)
    acq = ACQUISITIONS.build("bald", {"reserve": 0.0})
    assert acq.cold_start_random
    pairs = acq.acquire(prompts(12), view, 12, np.random.default_rng(0))
    assert [p.score for p in pairs] == [0.0] * 12 and view.feature_calls == 0
    orders = {
        tuple(
            p.prompt.uid
            for p in acq.acquire(prompts(12), _view(12, 0), 12, np.random.default_rng(s))
        )
        for s in range(5)
    }
    assert len(orders) > 1  # ties broken at random, not in pool order


def test_a_view_without_features_is_a_clear_error():
    from .scripted_view import ScriptedView

    acq = ACQUISITIONS.build("bald", {})
    with pytest.raises(TypeError, match="needs a PolicyView with `labelled`"):
        acq.acquire(prompts(3), ScriptedView(scripted_table(3)), 2, np.random.default_rng(0))


def test_greedy_diversity_picks_the_far_prompt_first_with_the_estimator_gain():
    near = np.random.default_rng(0).normal(scale=0.1, size=(6, 2))
    candidates = np.concatenate([near, [[5.0, 5.0]]])
    acquired = np.zeros((3, 2))
    order, values, gains = greedy_order(
        np.zeros(7), candidates, acquired, weight=1.0, k=1, rng=np.random.default_rng(0)
    )
    assert order[0] == 6 and sorted(order) == list(range(7))
    assert gains[0] == pytest.approx(2 / 4 * np.log(np.hypot(5, 5)))  # d / (N + 1) log rho
    assert values[0] == pytest.approx(gains[0])  # base 0: the value is the gain alone


def test_balpm_trades_uncertainty_against_diversity():
    view = _view(20, labels=40)
    for prompt in prompts(20):  # the unseen-direction prompts all sit in one tight cluster
        i = int(prompt.uid[1:])
        view.prompt_vectors[prompt.uid] = np.full(4, 0.01 * i) if i % 2 else np.eye(4)[i % 4] * 5
    plain = ACQUISITIONS.build("balpm", {"reserve": 0.0, "components": 4, "diversity_weight": 0})
    pairs = plain.acquire(prompts(20), view, 6, np.random.default_rng(0))
    assert all(int(p.prompt.uid[1:]) % 2 for p in pairs)  # weight 0: plain BALD
    diverse = ACQUISITIONS.build("balpm", {"reserve": 0.0, "components": 4, "diversity_weight": 5})
    pairs = diverse.acquire(prompts(20), view, 6, np.random.default_rng(0))
    assert any(int(p.prompt.uid[1:]) % 2 == 0 for p in pairs)  # diversity buys other prompts
    assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)
    assert all({"diversity", "balpm_value", "bald"} <= set(p.extras) for p in pairs)
    assert not diverse.cold_start_random  # at cold start it is pure diversity, not random
