"""`apl report` on synthetic run dirs: Figure 3's mapping, discovery, files written, CLI errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.errors import DataError, RunStoreError
from apl.oracles.consistency import ConsistencyResult, plot_consistency
from apl.reports.calibration import calibration, calibration_markdown
from apl.reports.collect import discover_runs, load_runs
from apl.reports.figures import bt_histograms
from apl.reports.markdown import write_report
from apl.reports.tables import random_references

from .synthetic import make_run


def assert_png(path):
    """A real, decodable PNG with some pixels."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas


def test_figure3_maps_bt_prob_to_the_oracles_choice(tmp_path):
    make_run(
        tmp_path / "certainty-seed0",
        acquisition="certainty",
        win_rates={1: 0.5, 2: 0.6},
        acquired={
            1: [(0.5, "A"), (0.5, "B")],  # cold start: no opinion
            2: [
                (0.92, "A"),  # model said A at .92, oracle A: correct at .92 -> green bin 8
                (0.92, "B"),  # oracle B: the model gave B .08 -> red bin 1 (confidently wrong)
                (0.32, "A"),  # .32 -> red bin 6
                (0.27, "B"),  # .73 -> green bin 4
                (0.99, "tie"),  # a tie neither agrees nor disagrees: left out
                (0.01, "invalid"),  # never a label: left out
                (None, "A"),  # not annotated: counted apart
            ],
        },
    )
    groups, _ = load_runs([tmp_path])
    run = groups["certainty"][0]
    assert run.unannotated == 1
    first, second = bt_histograms(groups)
    assert (first.round, first.undecided, first.correct.sum(), first.incorrect.sum()) == (
        1,
        2,
        0,
        0,
    )
    assert second.round == 2 and second.undecided == 0 and second.total == 4
    assert second.correct.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    assert second.incorrect.tolist() == [0, 1, 0, 0, 0, 0, 1, 0, 0, 0]


def test_histograms_pool_seeds(tmp_path):
    for seed in (0, 1):
        make_run(
            tmp_path / f"r{seed}",
            seed=seed,
            win_rates={1: 0.5},
            acquired={1: [(0.8, "A"), (0.8, "B")]},
        )
    (hist,) = bt_histograms(load_runs([tmp_path])[0])
    assert np.sum(hist.correct) == 2 and np.sum(hist.incorrect) == 2


def test_discover_runs_in_sweep_roots_and_run_dirs(tmp_path):
    root = tmp_path / "sweep"
    a = make_run(root / "random-seed0", win_rates={1: 0.5})
    b = make_run(root / "nested" / "certainty-seed0", acquisition="certainty", win_rates={1: 0.5})
    (root / "baselines").mkdir()
    (root / "logs").mkdir()
    (a / "final_model" / "config.yaml").write_text("not a run")  # inside a run: ignored
    assert discover_runs([root]) == [b.resolve(), a.resolve()]
    assert discover_runs([a, root]) == [a.resolve(), b.resolve()]  # each run once
    with pytest.raises(RunStoreError, match=r"does not exist; pass run directories or sweep roots"):
        discover_runs([tmp_path / "missing"])
    with pytest.raises(RunStoreError, match=r"holds no apl runs"):
        discover_runs([root / "logs"])


@pytest.fixture()
def consistency_dir(tmp_path):
    results = [ConsistencyResult("imdb_judge", 0.5, 50, 50, 0.96, 0.028, 0.0)]
    out = tmp_path / "consistency"
    out.mkdir()
    import json

    (out / "consistency.json").write_text(json.dumps([r.as_dict() for r in results]))
    plot_consistency(results, out / "consistency.png")
    return out


def test_write_report_files(tmp_path, consistency_dir):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(
            runs / f"random-seed{seed}",
            seed=seed,
            query_size=8,
            win_rates={1: 0.5 + 0.1 * seed, 2: 0.6},
            acquired={1: [(0.5, "A")], 2: [(0.7, "A"), (0.2, "A")]},
            cost_usd=0.01,
        )
        make_run(
            runs / f"hybrid-seed{seed}",
            acquisition="hybrid",
            seed=seed,
            query_size=8,
            win_rates={1: 0.6, 2: 0.8},
            acquired={1: [(0.5, "B")], 2: [(0.9, "B")]},
        )
    make_run(
        runs / "hybrid-seed2",
        acquisition="hybrid",
        seed=2,
        query_size=8,
        num_rounds=2,
        win_rates={1: 0.7},
        complete=False,
    )
    written = write_report([runs], tmp_path / "out", consistency_dir=consistency_dir)
    text = written.markdown.read_text()
    assert (written.num_runs, written.num_groups) == (5, 2)
    assert "| labels | random | hybrid |" in text
    assert "| 8 | 0.550 ± 0.050 (2) | **0.633 ± 0.033 (3)** |" in text
    assert "| 16 | 0.600 ± 0.000 (2) | **0.800 ± 0.000 (2)** |" in text
    assert "| hybrid | > 16 (> 2.00x) | > 16 (> 1.00x) |" in text  # random never reaches .63/.8
    assert "Incomplete runs (their evaluated rounds are included): hybrid-seed2." in text
    assert str(tmp_path) not in text  # run directories by name: no machine path in a report
    assert "| random | 2 | 0.0600 | 0.0000 | 0.0600 | 6 | 0 | 6 |" in text  # 3 verdicts x $.01 x 2
    assert "| imdb_judge | 0.5 | 50 | 50 | 0.960 |" in text
    for name in ("win_rate.png", "bt_histograms.png", "consistency.png"):
        assert f"({name})" in text
        assert_png(tmp_path / "out" / name)
    with (tmp_path / "out" / "aggregated.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["strategy"], r["labels"], r["seeds"]) for r in rows} == {
        ("random", "8", "2"),
        ("random", "16", "2"),
        ("hybrid", "8", "3"),
        ("hybrid", "16", "2"),
    }
    assert len((tmp_path / "out" / "runs.csv").read_text().splitlines()) == 1 + 9


def test_bad_consistency_dir_is_one_line_error(tmp_path):
    make_run(tmp_path / "r", win_rates={1: 0.5})
    with pytest.raises(DataError, match=r"--consistency .* holds no consistency.json"):
        write_report([tmp_path / "r"], tmp_path / "out", consistency_dir=tmp_path)


def test_cli_report(tmp_path):
    make_run(tmp_path / "runs" / "random-seed0", win_rates={1: 0.5})
    runner = CliRunner()
    ok = runner.invoke(app, ["report", str(tmp_path / "runs"), "--output", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "1 runs, 1 strategies" in ok.output and (tmp_path / "out" / "report.md").is_file()
    bad = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: ") and "does not exist" in bad.output


def test_variant_labels_name_only_the_options_a_run_sets(tmp_path):
    root = tmp_path / "sweep"
    make_run(root / "random-seed0", win_rates={1: 0.6})
    make_run(root / "certainty-seed0", acquisition="certainty", win_rates={1: 0.5})
    make_run(
        root / "certainty-seed0-least",
        acquisition="certainty",
        win_rates={1: 0.7},
        extra={"acquisition.direction": "least"},
    )
    groups, by = load_runs([root])
    assert list(groups) == ["random", "certainty", "certainty (acquisition.direction=least)"]
    assert by == ["acquisition.name", "acquisition.direction"]
    # Both certainty groups still find random as their reference.
    assert set(random_references(groups).values()) == {"random"}


def test_calibration_bins_the_models_confidence_against_the_oracle(tmp_path):
    make_run(
        tmp_path / "certainty-seed0",
        acquisition="certainty",
        win_rates={1: 0.5, 2: 0.6},
        acquired={
            1: [(0.5, "A"), (0.5, "B")],  # cold start: no preference, left out
            2: [
                (0.97, "A"),  # confident 0.97, oracle agreed
                (0.97, "A"),
                (0.97, "A"),
                (0.03, "A"),  # the model preferred B at 0.97: the oracle disagreed
                (0.35, "B"),  # the model preferred B at 0.65 and the oracle agreed
                (1.0, "A"),  # the top edge belongs to the last bin
                (0.9, "tie"),  # not an A/B label: left out
            ],
        },
    )
    groups, _ = load_runs([tmp_path])
    bins = calibration(groups)
    assert [(b.low, b.high, b.pairs) for b in bins] == [(0.6, 0.7, 1), (0.95, 1.0, 5)]
    assert bins[0].predicted == pytest.approx(0.65) and bins[0].observed == 1.0
    assert bins[1].predicted == pytest.approx((4 * 0.97 + 1.0) / 5)
    assert bins[1].observed == pytest.approx(4 / 5)
    table = calibration_markdown(bins)
    assert "| certainty | 0.95-1 | 5 | 0.98 | 0.80 |" in table
    report = write_report([tmp_path], tmp_path / "report").markdown.read_text()
    assert "## Calibration of the implicit reward" in report and table in report
