"""The benchmark's findings: docs/PROTOCOL.md's verdict rule on synthetic runs (real ledgers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from benchmark_doc import findings, one_sided_p  # noqa: E402
from benchmark_plan import RESET  # noqa: E402

from .synthetic import make_run  # noqa: E402

SEEDS = range(5)
RANDOM = {1: 0.50, 2: 0.60, 3: 0.70, 4: 0.76}  # win-rate per round of 128 labels
NOISE = {0: 0.010, 1: -0.012, 2: 0.004, 3: -0.006, 4: 0.008}  # differs per seed and strategy


def _runs(
    root: Path, strategy: str, shift: float, expected_sign: float, complete=SEEDS, jitter=-1
) -> None:
    """Five seeds: random's curve, or it + `shift` from round 2 on (round 1 is random's own).

    The expected win-rate moves with the win-rate difference (`expected_sign` 1) or against it.
    """
    for seed in SEEDS:
        if strategy == "random":
            rates = {r: v + NOISE[seed] for r, v in RANDOM.items()}
            metrics = {r: {"eval/expected_win_rate": 0.6} for r in rates}
        else:
            rates = {
                r: v + jitter * NOISE[seed] + (shift if r > 1 else 0.0) for r, v in RANDOM.items()
            }
            metrics = {
                r: {"eval/expected_win_rate": 0.6 + expected_sign * (v - RANDOM[r]) / 4}
                for r, v in rates.items()
            }
        make_run(
            root / f"{strategy}-seed{seed}",
            acquisition=strategy,
            seed=seed,
            query_size=128,
            win_rates=rates if seed in complete else {1: rates[1], 2: rates[2]},
            num_rounds=4,
            metrics=metrics,
            complete=seed in complete,
        )


@pytest.fixture()
def sweep(tmp_path):
    _runs(tmp_path, "random", 0.0, 1)
    _runs(tmp_path, "certainty", 0.05, 1)  # well above random, expected agrees
    _runs(tmp_path, "bald", -0.08, 1)  # well below random
    _runs(tmp_path, "balpm", 0.05, -1)  # above random, but the expected win-rate disagrees
    _runs(tmp_path, "adpo", 0.002, 1, complete=range(4))  # no difference; seed 4 unfinished
    _runs(tmp_path, "entropy", 0.0, 1, jitter=1)  # random's own values on every seed
    _runs(tmp_path, "hybrid", 0.05, 1)  # as certainty, but a secondary strategy
    return tmp_path


def _line(text: str, strategy: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"- {strategy} at"))


def test_the_verdict_rule_needs_z_the_expected_sign_and_the_interval(sweep):
    planned = {s: 5 for s in ("random", "certainty", "bald", "balpm", "adpo")}
    text = findings(sweep, RESET, planned, slope=4.0)
    certainty = _line(text, "certainty")
    # +0.05 minus twice the mean seed noise (random's +noise, the strategy's -noise)
    assert certainty.startswith("- certainty at 512 labels: +0.048 ± 0.008 win-rate (z +5.7")
    assert certainty.endswith("**saves labels**.")
    assert "> 1.00x" in certainty  # above random's last point: random never gets there
    assert "~+0.049 in win-rate units" in certainty  # expected difference x the slope
    assert _line(text, "bald").endswith("**worse than random**.")
    assert "expected win-rate or the interval disagrees" in _line(text, "balpm")
    adpo = _line(text, "adpo")
    assert adpo.startswith("- adpo at 512 labels") and "4 seeds (planned 5" in adpo
    assert adpo.endswith("no result (|z| < 2.5).")
    assert "- entropy at 512 labels: equal to random on every one of its 5 seeds" in text
    assert "entropy at 384" not in text  # judged at its largest size, not at a smaller one
    hybrid = _line(text, "hybrid")  # secondary: the same numbers, no verdict
    assert hybrid.startswith("- hybrid at 512 labels: +0.048 ± 0.008 win-rate (z +5.7")
    assert hybrid.endswith("secondary (reported; the verdict rule is for the primary comparisons).")
    assert (
        "one-sided p of about 0.033 per comparison" in text
    )  # the rule's z = 2.5 at 5 seeds, read as a t


def test_one_sided_p_is_students_t():
    assert one_sided_p(2.5, 5) == pytest.approx(0.0334, abs=1e-4)  # t with 4 df
    assert one_sided_p(2.5, 1000) == pytest.approx(0.0063, abs=2e-4)  # ~ the normal's 0.0062


def test_report_only_lists_the_unfinished_runs_by_name(tmp_path):
    from benchmark_doc import _run_lines

    _runs(tmp_path / "reset", "random", 0.0, 1)
    _runs(tmp_path / "reset", "adpo", 0.0, 1, complete=range(4))
    (line,) = _run_lines(tmp_path, (RESET,), plan=None, outcomes=None, wall_s=0.0, load=(0, 0))
    assert "report only (`--report-only`, nothing run); 9 complete" in line
    assert "unfinished: reset/adpo-seed4 (rerun the command to finish them)" in line
    assert str(tmp_path) not in line
