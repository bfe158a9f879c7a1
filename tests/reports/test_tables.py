"""Aggregation across seeds, Table 2, interpolated label efficiency: checked against hand computations."""

from __future__ import annotations

import math

import pytest

from apl.reports.collect import load_runs
from apl.reports.tables import (
    Point,
    aggregate,
    label_efficiency,
    labels_to_reach,
    mean_stderr,
    random_references,
    table2_markdown,
)

from .synthetic import make_run


def curve(*pairs: tuple[int, float]) -> list[Point]:
    return [Point("random", n, m, 0.0, 3, ()) for n, m in pairs]


def test_mean_stderr_uses_ddof_1():
    mean, se = mean_stderr([0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.7)
    assert se == pytest.approx(0.1 / math.sqrt(3))  # sample std is exactly 0.1
    one = mean_stderr([0.4])
    assert one[0] == 0.4 and math.isnan(one[1])


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (0.75, (192.0, "=")),  # halfway between (128, .7) and (256, .8)
        (0.7, (128.0, "=")),  # exactly on a point
        (0.62, (64 + 0.02 / 0.1 * 64, "=")),
        (0.55, (64.0, "<=")),  # below random's first point: only a bound
        (0.6, (64.0, "<=")),
        (0.85, (256.0, ">")),  # random never gets there
    ],
)
def test_labels_to_reach_interpolates_linearly(target, expected):
    labels, bound = labels_to_reach(curve((64, 0.6), (128, 0.7), (256, 0.8)), target)
    assert (labels, bound) == (pytest.approx(expected[0]), expected[1])


def test_labels_to_reach_takes_the_first_crossing_of_a_bumpy_curve():
    bumpy = curve((64, 0.6), (128, 0.8), (192, 0.7), (256, 0.9))
    assert labels_to_reach(bumpy, 0.75) == (pytest.approx(64 + 0.15 / 0.2 * 64), "=")


@pytest.fixture()
def sweep(tmp_path):
    """Random over 3 seeds, certainty over 2, on a 64-label query size."""
    random_rates = [
        {1: 0.55, 2: 0.65, 3: 0.80},
        {1: 0.65, 2: 0.75, 3: 0.80},
        {1: 0.60, 2: 0.70, 3: 0.80},
    ]
    for seed, rates in enumerate(random_rates):
        make_run(tmp_path / f"random-seed{seed}", acquisition="random", seed=seed, win_rates=rates)
    # certainty at 128 labels: mean 0.75 -> random needs 128 + 0.05/0.10 * 64 = 160 labels
    make_run(
        tmp_path / "certainty-seed0",
        acquisition="certainty",
        seed=0,
        win_rates={1: 0.60, 2: 0.70, 3: 0.90},
    )
    make_run(
        tmp_path / "certainty-seed1",
        acquisition="certainty",
        seed=1,
        win_rates={1: 0.70, 2: 0.80, 3: 0.84},
    )
    return tmp_path


def test_aggregate_pools_seeds_per_labelled_set_size(sweep):
    groups, by = load_runs([sweep])
    assert by == ["acquisition.name"]
    assert list(groups) == ["random", "certainty"]  # the baseline first
    points = aggregate(groups)
    random, certainty = points["random"], points["certainty"]
    assert [p.labels for p in random] == [64, 128, 192]
    assert [p.seeds for p in random] == [3, 3, 3]
    assert random[0].mean == pytest.approx(0.60)
    assert random[0].stderr == pytest.approx(0.05 / math.sqrt(3))  # std of .55,.65,.60 is .05
    assert random[2].stderr == pytest.approx(0.0)
    assert certainty[1].mean == pytest.approx(0.75)
    assert certainty[1].stderr == pytest.approx(math.sqrt(0.005) / math.sqrt(2))


def test_table2_marks_the_best_mean_of_each_row(sweep):
    groups, _ = load_runs([sweep])
    text = table2_markdown(aggregate(groups))
    lines = text.splitlines()
    assert lines[0] == "| labels | random | certainty |"
    assert lines[2] == "| 64 | 0.600 ± 0.029 (3) | **0.650 ± 0.050 (2)** |"
    assert lines[4] == "| 192 | 0.800 ± 0.000 (3) | **0.870 ± 0.030 (2)** |"


def test_label_efficiency_against_random(sweep):
    groups, _ = load_runs([sweep])
    rows = {
        (e.strategy, e.labels): e
        for e in label_efficiency(aggregate(groups), random_references(groups))
    }
    assert ("random", 64) not in rows  # random is the reference, not a row
    at_128 = rows[("certainty", 128)]
    assert at_128.random_labels == pytest.approx(160.0) and at_128.bound == "="
    assert at_128.ratio == pytest.approx(1.25)
    assert at_128.text() == "160 (1.25x)"
    assert rows[("certainty", 64)].random_labels == pytest.approx(96.0)  # .65: halfway 64..128
    assert rows[("certainty", 192)].text() == "> 192 (> 1.00x)"


def test_strategies_split_by_any_other_differing_field(tmp_path):
    make_run(
        tmp_path / "a", acquisition="random", seed=0, win_rates={1: 0.6}, extra={"dpo.beta": 0.1}
    )
    make_run(
        tmp_path / "b", acquisition="random", seed=1, win_rates={1: 0.7}, extra={"dpo.beta": 0.1}
    )
    make_run(
        tmp_path / "c", acquisition="random", seed=0, win_rates={1: 0.5}, extra={"dpo.beta": 0.2}
    )
    make_run(
        tmp_path / "d", acquisition="certainty", seed=0, win_rates={1: 0.9}, extra={"dpo.beta": 0.2}
    )
    groups, by = load_runs([tmp_path])
    assert by == ["acquisition.name", "dpo.beta"]
    assert {s: len(r) for s, r in groups.items()} == {
        "random (dpo.beta=0.1)": 2,
        "random (dpo.beta=0.2)": 1,
        "certainty (dpo.beta=0.2)": 1,
    }
    # certainty is compared with the random runs of its own beta, not the other beta's
    assert random_references(groups)["certainty (dpo.beta=0.2)"] == "random (dpo.beta=0.2)"


def test_a_seed_that_ended_short_stays_in_its_planned_column(tmp_path):
    """Seed 1's rounds held 60 and 125 labels, not 64 and 128: it is still a 64 / 128 run."""
    make_run(tmp_path / "r0", seed=0, win_rates={1: 0.5, 2: 0.6})
    make_run(tmp_path / "r1", seed=1, win_rates={1: 0.7, 2: 0.8}, labels_held={1: 60, 2: 125})
    groups, _ = load_runs([tmp_path])
    (point64, point128) = aggregate(groups)["random"]
    assert (point64.labels, point64.seeds, point64.mean) == (64, 2, pytest.approx(0.6))
    assert (point128.labels, point128.seeds, point128.mean) == (128, 2, pytest.approx(0.7))
    short = next(r for r in groups["random"] if r.seed == 1)
    assert short.labels_held() == {64: 60, 128: 125}
    assert "| 64 | **0.600 ± 0.100 (2)** |" in table2_markdown(aggregate(groups))
