"""The loop with the newer strategies on the tiny model: shared round 1, pseudo-labels, compute.

Four 2-round runs with one seed (random, certainty, adpo, balpm), in process, offline judge.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.config import config_from_dict
from apl.loop.runner import run
from apl.reports.collect import load_run
from apl.store.run_dir import load_run_dir

from .conftest import run_config

STRATEGIES = {
    "random": {"name": "random"},
    "certainty": {"name": "certainty"},
    "adpo": {"name": "adpo", "confidence": 0.51},  # the tiny model's gaps are small
    "balpm": {"name": "balpm", "min_labels": 4},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, judge_cache_dir):
    """{strategy: run dir} after 2 rounds of M=8 from pools of 24."""
    root = tmp_path_factory.mktemp("strategies")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("APL_CACHE_DIR", str(judge_cache_dir))
        for name, acquisition in STRATEGIES.items():
            config = run_config(tiny_model_dir, root / name, acquisition=acquisition)
            run(config_from_dict(config), cache_dir=judge_cache_dir)
            out[name] = root / name
    return out


def _round_one(path):
    with load_run_dir(path).open_ledger() as ledger:
        return [(c.pair.prompt.uid, c.pair.a.text, c.pair.b.text) for c in ledger.candidates(1)]


@pytest.mark.slow
def test_strategies_that_choose_at_random_at_cold_start_share_random_s_round_one(runs):
    first = _round_one(runs["random"])
    assert len(first) == 10  # M=8 plus the 25% reserve
    assert _round_one(runs["certainty"]) == first
    assert _round_one(runs["adpo"]) == first
    assert _round_one(runs["balpm"]) != first  # diversity decides its first round
    evaluations = set()
    for path in runs.values():  # every strategy: the same eval prompts and baseline completions
        with load_run_dir(path).open_ledger() as ledger:
            baseline = ledger.baseline()
            evaluations.add(tuple((p.uid, baseline[p.uid].text) for p in ledger.eval_prompts()))
    assert len(evaluations) == 1


@pytest.mark.slow
def test_pseudo_labels_train_but_are_never_paid_labels(runs):
    path = runs["adpo"]
    with load_run_dir(path).open_ledger() as ledger:
        paid, pseudo = ledger.label_counts()
        metrics = ledger.metrics()
        spend = ledger.spend()
        oracle_verdicts = sum(len(ledger.verdicts(r)) for r in (1, 2)) - pseudo
        trained = len(ledger.preferences())
        marked = [lp for lp in ledger.labelled() if lp.source == "pseudo"]
    assert paid == 16 and pseudo > 0 and trained == paid + pseudo
    assert metrics[2]["label/total"] == 16 and metrics[2]["label/pseudo"] == pseudo
    assert all(lp.round == 2 and lp.judgement.judge_id == "pseudo:implicit-reward" for lp in marked)
    assert all(lp.judgement.cost_usd == 0 and lp.judgement.probability is not None for lp in marked)
    label_calls = spend.oracle_calls + spend.cache_hits - 2 * 12  # minus 2 evaluations of 12
    assert label_calls == oracle_verdicts  # pseudo-labels are not oracle calls
    assert metrics[2]["compute/trained_pairs"] == (paid + pseudo) * 3  # reset mode, 3 epochs
    record = load_run(path)
    assert (record.labels, record.pseudo_labels) == (16, pseudo)
    assert all(p.round == 2 or p.bt_prob == 0.5 for p in record.acquired)
    assert len(record.acquired) <= 16  # Figure 3 counts oracle verdicts only
    rows = [json.loads(r) for r in (path / "export" / "preferences.jsonl").read_text().splitlines()]
    assert sorted(r["label_source"] for r in rows) == ["oracle"] * 16 + ["pseudo"] * pseudo
    status = CliRunner().invoke(app, ["status", str(path)])
    assert status.exit_code == 0 and "16 usable" in status.output
    assert f"{pseudo} (the policy's own preference; not paid)" in status.output


@pytest.mark.slow
def test_every_round_records_its_compute_cost(runs):
    metrics = {name: load_run(path).metrics for name, path in runs.items()}
    for name, by_round in metrics.items():
        for round in (1, 2):
            row = by_round[round]
            for key in ("sampled_sequences", "sampled_tokens", "trained_pairs"):
                assert row[f"compute/{key}"] >= 0, (name, round, key)
            assert row["time/round_acquire"] > 0 and row["time/round_train"] > 0
            assert row["compute/sampled_tokens"] >= row["compute/sampled_sequences"]
    # round 2: random samples a pair for its 10 kept prompts, certainty for all 24 in the pool
    assert metrics["random"][2]["compute/sampled_sequences"] == 20
    assert metrics["certainty"][2]["compute/sampled_sequences"] == 48
    assert metrics["random"][2]["compute/trained_pairs"] == 16 * 3
    assert metrics["random"][1]["compute/feature_sequences"] == 0
    assert metrics["balpm"][2]["compute/feature_sequences"] > 0  # frozen features
