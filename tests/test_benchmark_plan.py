"""The benchmark's pre-registered plan rule and its noise arithmetic (benchmarks/, no model)."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import benchmark_plan as bp  # noqa: E402
from benchmark import CODE_FILE, check_code  # noqa: E402
from noise import decompose  # noqa: E402

QUIET = bp.Rates(train_pairs_s=60.9, score_seqs_s=609, sample_seqs_s=352, judge_pairs_s=3000)


def test_the_plan_fits_its_budget_and_gives_the_primaries_the_most_seeds():
    plan = bp.make_plan(QUIET, hours=3, workers=2)
    assert plan.total_s <= 3 * 3600
    reset, online = plan.seeds["reset"], plan.seeds["online"]
    n = reset["random"]
    assert bp.MIN_SEEDS <= n <= bp.MAX_SEEDS
    assert all(reset[s] == n for s in bp.RESET.primary) and online["certainty"] == n
    for regime in (reset, online):
        for strategy, k in regime.items():
            assert k <= n and (k == n or k >= bp.MIN_SECONDARY_SEEDS)
    bigger = bp.make_plan(QUIET, hours=12, workers=2)
    assert bigger.seeds["reset"]["random"] > n  # more time, more power
    assert math.isclose(plan.predicted_mdd(0.1)["reset"], 0.2 / math.sqrt(n))


def test_a_tight_budget_cuts_and_then_drops_the_costly_secondaries_first():
    slow = bp.Rates(train_pairs_s=20, score_seqs_s=200, sample_seqs_s=60, judge_pairs_s=1000)
    plan = bp.make_plan(slow, hours=3, workers=2)
    dropped = [n for n in plan.notes if "left out" in n]
    assert dropped and "hybrid (online)" in dropped[0]  # the most expensive run goes first
    assert "hybrid" not in plan.seeds["online"]
    assert plan.seeds["reset"]["random"] >= bp.MIN_SEEDS or "over the" in plan.notes[-1]


def test_costlier_strategies_are_estimated_costlier():
    s = {x: bp.run_seconds(x, bp.RESET, QUIET) for x in (*bp.RESET.primary, *bp.RESET.secondary)}
    assert s["random"] < s["certainty"] < s["hybrid"] and s["random"] < s["adpo"]
    online = bp.run_seconds("random", bp.ONLINE, QUIET)
    assert online < 60 * bp.ONLINE.rounds  # one DPO step per batch, not epochs over all labels
    assert bp.ONLINE.waypoints == [512, 1024, 1536, 2048, 2560] and bp.RESET.waypoints is None


def test_plan_round_trips_through_json():
    plan = bp.make_plan(QUIET, hours=3, workers=2)
    again = bp.Plan.from_json(plan.to_json())
    assert again.seeds == plan.seeds and again.rates == plan.rates
    assert again.total_s == pytest.approx(plan.total_s)


def test_noise_decomposition_by_the_method_of_moments():
    # each model re-evaluated: variance 0.01**2; each labelled set retrained: 0.02**2 more
    measured = [
        {
            "original": {"eval/win_rate": base},
            "evals": [{"eval/win_rate": base + d} for d in (0.01, -0.01)],
            "retrains": [{"eval/win_rate": base + d} for d in (0.03, -0.03)],
        }
        for base in (0.6, 0.7)
    ]
    finals = [0.5, 0.6, 0.7, 0.8, 0.9]
    c = decompose(measured, finals, "eval/win_rate")
    assert c.eval_sd == pytest.approx(0.01)
    assert c.train_sd == pytest.approx(math.sqrt(0.03**2 - 0.01**2))
    total = math.sqrt(sum((x - 0.7) ** 2 for x in finals) / 4)
    assert c.total_sd == pytest.approx(total)
    assert c.labels_sd == pytest.approx(math.sqrt(total**2 - 0.03**2))
    assert decompose(measured, [0.5], "eval/win_rate") is None  # one seed: no spread


def test_a_resume_on_changed_code_stops_unless_the_change_is_accepted(tmp_path):
    package = tmp_path / "apl"
    shutil.copytree(
        Path(__file__).resolve().parents[1] / "src" / "apl" / "acquisition",
        package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    root = tmp_path / "runs"
    root.mkdir()
    check_code(root, accept_change=False, package=package)  # first start records the code
    recorded = (root / CODE_FILE).read_text()
    check_code(root, accept_change=False, package=package)  # same code: resumes
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.pyc").write_bytes(b"compiled")  # bytecode is not code
    check_code(root, accept_change=False, package=package)
    assert (root / CODE_FILE).read_text() == recorded

    source = package / "random.py"
    source.write_text(source.read_text() + "\n# changed\n")
    with pytest.raises(SystemExit, match="differs from the code this benchmark's runs used"):
        check_code(root, accept_change=False, package=package)
    assert (root / CODE_FILE).read_text() == recorded  # nothing overwritten by the refusal

    check_code(root, accept_change=True, package=package)
    accepted = json.loads((root / CODE_FILE).read_text())
    assert accepted["earlier"]["sha256"] == json.loads(recorded)["sha256"]
    assert accepted["sha256"] != accepted["earlier"]["sha256"] and "accepted" in accepted
    check_code(root, accept_change=False, package=package)  # the accepted code resumes
