"""The report's default comparison: paired by seed, with bootstrap label efficiency and compute."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apl.reports.collect import load_runs
from apl.reports.compute import compute_table
from apl.reports.markdown import write_report
from apl.reports.paired import efficiency_intervals, paired_differences
from apl.reports.tables import random_references

from .synthetic import make_run

# random: 0.50 / 0.60 / 0.70 at 64 / 128 / 192; certainty: +0.04, +0.05, +0.06 over its seed's
# random, plus a seed effect shared by both (what pairing removes)
SEED_EFFECT = {0: -0.10, 1: 0.0, 2: 0.12, 3: 0.05}
BUMP = {0: (0.04, 0.05, 0.06), 1: (0.02, 0.07, 0.04), 2: (0.06, 0.03, 0.08), 3: (0.04, 0.05, 0.06)}


@pytest.fixture()
def sweep(tmp_path):
    for seed, shift in SEED_EFFECT.items():
        base = {1: 0.5 + shift, 2: 0.6 + shift, 3: 0.7 + shift}
        compute = {
            r: {"time/round_acquire": 1.0, "time/round_train": 2.0, "compute/sampled_tokens": 100}
            for r in (1, 2, 3)
        }
        make_run(tmp_path / f"random-seed{seed}", seed=seed, win_rates=base, metrics=compute)
        mine = {r: base[r] + BUMP[seed][r - 1] for r in (1, 2, 3)}
        expected = {r: {"eval/expected_win_rate": 0.5 + (mine[r] - 0.5) / 3} for r in (1, 2, 3)}
        costly = {
            r: {"time/round_acquire": 10.0, "time/round_train": 2.0, **expected[r]}
            for r in (1, 2, 3)
        }
        make_run(
            tmp_path / f"certainty-seed{seed}",
            acquisition="certainty",
            seed=seed,
            win_rates=mine,
            metrics=costly,
        )
    return tmp_path


def test_paired_differences_remove_the_shared_seed_effect(sweep):
    groups, _ = load_runs([sweep])
    refs = random_references(groups)
    rows = {r.labels: r for r in paired_differences(groups, refs, "eval/win_rate")}
    at128 = rows[128]
    diffs = np.array([BUMP[s][1] for s in range(4)])
    assert at128.seeds == (0, 1, 2, 3)
    assert at128.mean == pytest.approx(diffs.mean())
    assert at128.stderr == pytest.approx(diffs.std(ddof=1) / 2)
    randoms = np.array([0.6 + SEED_EFFECT[s] for s in range(4)])
    pooled_se = math.hypot(randoms.std(ddof=1) / 2, (randoms + diffs).std(ddof=1) / 2)
    assert at128.stderr < pooled_se / 3  # pairing removes the seed effect
    assert at128.z == pytest.approx(at128.mean / at128.stderr)
    # random has no expected win-rate logged here: no pairs, no rows for that metric
    assert paired_differences(groups, refs, "eval/expected_win_rate") == []


def test_label_efficiency_interval_brackets_the_point_estimate(sweep):
    groups, _ = load_runs([sweep])
    rows = {r.labels: r for r in efficiency_intervals(groups, random_references(groups))}
    at128 = rows[128]
    # certainty's mean at 128 is random's + 0.05: random reaches it at 128 + 0.05/0.1 * 64 = 160
    assert at128.random_labels == pytest.approx(160)
    assert at128.low <= at128.random_labels <= at128.high
    assert at128.ratio_text(at128.random_labels).endswith("x")
    top = rows[192]  # above random's last point: random never gets there
    assert math.isinf(top.random_labels) and top.text(top.random_labels) == "> 192"


def test_compute_is_reported_against_random(sweep):
    groups, _ = load_runs([sweep])
    rows = {
        s: (totals, ratio) for s, totals, ratio in compute_table(groups, random_references(groups))
    }
    assert rows["random"][0]["time/round_acquire"] == 3.0
    assert rows["random"][1] == pytest.approx(1.0)
    assert rows["certainty"][1] == pytest.approx((30.0 + 6.0) / (3.0 + 6.0))


def test_report_leads_with_the_paired_comparison(sweep, tmp_path):
    text = write_report([sweep], tmp_path / "out").markdown.read_text()
    paired = text.index("## Each strategy against random, paired by seed")
    pooled = text.index("seeds pooled (paper Table 2)")
    assert paired < pooled
    assert "### Labels random needs to match each strategy, with a bootstrap interval" in text
    assert "## Compute beside labels" in text and "4.00x" in text


def test_runs_repeating_a_seed_are_averaged_not_dropped(sweep, tmp_path, caplog):
    # a second copy of certainty seed 1 (the same config, another output dir), 0.10 higher
    again = tmp_path / "again"
    mine = {r: 0.5 + 0.1 * (r - 1) + BUMP[1][r - 1] + 0.10 for r in (1, 2, 3)}
    make_run(again / "certainty-seed1", acquisition="certainty", seed=1, win_rates=mine)
    groups, _ = load_runs([sweep, again])
    assert len(groups["certainty"]) == 5
    assert "repeated seeds" in caplog.text
    rows = {
        r.labels: r for r in paired_differences(groups, random_references(groups), "eval/win_rate")
    }
    diffs = np.array([BUMP[s][1] for s in range(4)])
    diffs[1] += 0.05  # seed 1: the mean of its two runs, +0.00 and +0.10 over the first
    assert rows[128].seeds == (0, 1, 2, 3)
    assert rows[128].mean == pytest.approx(diffs.mean())
    assert rows[128].stderr == pytest.approx(diffs.std(ddof=1) / 2)
