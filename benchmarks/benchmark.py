"""The label-efficiency benchmark of docs/PROTOCOL.md, in one resumable command -> docs/RESULTS.md.

1. Measures this machine's rates at one thread (DPO, scoring, sampling, the offline judge) and
   plans the seeds that fit `--hours` on the cores (benchmark_plan.py); prints the plan. The
   plan is saved beside the runs, so a rerun after a kill keeps it (`--replan` to redo it).
2. Runs the reset regime (7 strategies) and the online regime (3) as `apl sweep`s: complete
   runs are skipped, interrupted ones resumed, so rerunning the command finishes what is left.
   Runs go seed by seed, the longest first within a seed.
   The apl package's fingerprint is saved too (code.json): a rerun on changed code stops with
   an error, since resumed runs must share the kept runs' code (`--accept-code-change`).
3. Decomposes the noise on the reset regime's random runs (benchmarks/noise.py, resumable).
4. Writes `apl report` per regime and docs/RESULTS.md (benchmark_doc.py), keeping the
   hand-written analysis block.

    python benchmarks/benchmark.py                      # the full benchmark, ~3 h on 2 cores
    python benchmarks/benchmark.py --plan-only          # measure the rates, print the plan
    python benchmarks/benchmark.py --report-only        # RESULTS.md from the runs as they are
    python benchmarks/benchmark.py --smoke --model DIR  # minutes: tiny model and sizes, not docs/
    python benchmarks/benchmark.py --pilot              # real model, small, runs/pilot: the noise
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import benchmark_plan as protocol  # noqa: E402
from benchmark_plan import REGIMES, Plan, Rates, Regime, make_plan, plan_markdown  # noqa: E402

PLAN_FILE = "plan.json"
CODE_FILE = "code.json"


def calibrate(model: str) -> Rates:
    """Rates at one thread: the training/scoring/sampling probe of label_efficiency, plus the judge."""
    from label_efficiency import calibrate as model_rates

    from apl.oracles.fluency_model import preference_pairs
    from apl.oracles.imdb_judge import ImdbJudge

    rates = model_rates(model)
    judge = ImdbJudge()
    pos, neg = preference_pairs()
    prompts, completions = [""] * (2 * len(pos)), pos + neg
    judge.score(prompts[:8], completions[:8])  # load both fitted models first
    start = time.perf_counter()
    judge.score(prompts, completions)
    pairs_s = len(pos) / (time.perf_counter() - start)
    return Rates(rates.train_pairs_s, rates.score_seqs_s, rates.sample_seqs_s, pairs_s)


def smoke_regimes() -> tuple[Regime, ...]:
    """Tiny sizes with every strategy, for checking the pipeline in minutes."""
    return (
        dataclasses.replace(
            protocol.RESET, query_size=8, pool_size=24, rounds=2, eval_prompts=16, epochs=2
        ),
        dataclasses.replace(
            protocol.ONLINE, query_size=8, pool_size=16, rounds=4, eval_prompts=16, eval_every=2
        ),
    )


def pilot_regimes() -> tuple[Regime, ...]:
    """The real model at small sizes: random and certainty in reset mode, to measure the noise."""
    return (
        dataclasses.replace(
            protocol.RESET,
            query_size=64,
            pool_size=256,
            rounds=2,
            primary=("random", "certainty"),
            secondary=(),
        ),
    )


def sweep_for(regime: Regime, plan: Plan, root: Path, extra: dict):
    """The regime's runs as one SweepSpec, seed by seed, the longest run first in each seed."""
    from apl.sweep import build_sweep
    from apl.sweep.spec import SweepSpec

    base = regime.overrides(None)
    for section, values in extra.items():
        base.setdefault(section, {}).update(values)
    seeds = plan.seeds[regime.name]
    runs = []
    for strategy, n in seeds.items():
        spec = build_sweep(base, {"acquisition.name": [strategy], "seed": list(range(n))}, root)
        runs += spec.runs
    cost = plan.run_s[regime.name]
    runs.sort(key=lambda r: (r.config.seed, -cost.get(r.config.acquisition.name, 0.0)))
    return SweepSpec(root, runs, source=f"benchmark ({regime.name})")


def load_or_make_plan(args, root: Path, workers: int, model: str) -> Plan:
    """The saved plan of an earlier invocation, else a fresh one from measured rates."""
    saved = root / PLAN_FILE
    if saved.is_file() and not args.replan:
        print(f"resuming the plan saved in {saved} (--replan to plan afresh)")
        return Plan.from_json(json.loads(saved.read_text()))
    rates = calibrate(model)
    return make_plan(rates, args.hours, workers, seeds=args.seeds)


def code_fingerprint(package: Path | None = None) -> dict[str, str]:
    """sha256 of every file of the `apl` package the runs will import, and the repo's commit."""
    import hashlib
    import subprocess

    if package is None:
        import apl

        package = Path(apl.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    commit = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {"sha256": digest.hexdigest(), "commit": commit or "unknown"}


def check_code(root: Path, accept_change: bool, package: Path | None = None) -> None:
    """Refuse to resume on other code than the kept runs used (their common random numbers)."""
    saved, now = root / CODE_FILE, code_fingerprint(package)
    if saved.is_file():
        first = json.loads(saved.read_text())
        if first["sha256"] != now["sha256"] and not accept_change:
            sys.exit(
                f"error: the apl package differs from the code this benchmark's runs used "
                f"(commit {first['commit']}, {root / CODE_FILE}); resume it on that code: "
                f"`git worktree add ../apl-bench {first['commit']}` and rerun with "
                f"PYTHONPATH=$PWD/../apl-bench/src (or --accept-code-change, with a dated note in "
                f"docs/PROTOCOL.md saying why the change cannot alter a run)"
            )
        if first["sha256"] == now["sha256"]:
            return
        now["accepted"] = time.strftime("%Y-%m-%d %H:%M")
        now["earlier"] = first
    saved.write_text(json.dumps(now, indent=1))


def main() -> None:
    """Plan, sweep both regimes, decompose the noise, report, write RESULTS.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=3.0, help="Wall-time budget.")
    parser.add_argument("--seeds", type=int, default=None, help="Primary seeds (default: plan).")
    parser.add_argument("--parallel", type=int, default=None, help="Runs at once (default: cores).")
    parser.add_argument("--model", default=None, help="Policy (default: apl run's default).")
    parser.add_argument(
        "--root", type=Path, default=None, help="Default runs/benchmark (pilot, smoke: apart)."
    )
    parser.add_argument("--results", type=Path, default=None, help="Default docs/RESULTS.md.")
    parser.add_argument("--plan-only", action="store_true", help="Print the plan; run nothing.")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Rewrite the reports and RESULTS.md from the runs as they are; run nothing.",
    )
    parser.add_argument("--replan", action="store_true", help="Plan afresh; ignore plan.json.")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes; not into docs/.")
    parser.add_argument(
        "--accept-code-change",
        action="store_true",
        help="Resume although the apl package changed since the runs began (see PROTOCOL.md).",
    )
    parser.add_argument(
        "--pilot", action="store_true", help="Real model, 2 strategies x 3 seeds, 128 labels."
    )
    args = parser.parse_args()
    name = "benchmark-smoke" if args.smoke else "pilot" if args.pilot else "benchmark"
    args.root = args.root or REPO / "runs" / name

    from benchmark_doc import write_results
    from noise import measure

    from apl.config import APLConfig
    from apl.log import setup_logging
    from apl.reports.markdown import write_report
    from apl.sweep import run_sweep
    from apl.sweep.runner import available_cores

    setup_logging()
    workers = args.parallel or available_cores()
    model = args.model or APLConfig().model.model_name_or_path
    command = "python benchmarks/benchmark.py " + " ".join(sys.argv[1:])
    regimes, extra = REGIMES, {"model": {"model_name_or_path": model}}
    noise_sizes = (protocol.NOISE_RUNS, protocol.NOISE_EVALS, protocol.NOISE_RETRAINS)
    if args.smoke:
        if args.model is None:
            parser.error("--smoke needs --model DIR (e.g. the tests' tiny GPT-2)")
        regimes = smoke_regimes()
        protocol.REGIMES = regimes  # the planner and the doc read the regimes from here
        extra = {
            "model": {"model_name_or_path": model, "bf16": False},
            "dpo": {"learning_rate": 1e-3, "per_device_train_batch_size": 8},
            "generation": {"batch_size": 32},
        }
        rates = Rates(10.0, 100.0, 50.0, 1000.0)
        plan = make_plan(rates, args.hours, workers, seeds=args.seeds or 2)
        plan.seeds = {r: {s: min(n, 2) for s, n in by.items()} for r, by in plan.seeds.items()}
        noise_sizes = (2, 1, 1)
        results = args.results or args.root / "RESULTS.md"
    elif args.pilot:
        regimes = pilot_regimes()
        protocol.REGIMES = regimes
        rates = Rates(60.9, 609.0, 352.0, 3000.0)  # not measured: the pilot's size is fixed
        plan = make_plan(rates, args.hours, workers, seeds=args.seeds or 3)
        noise_sizes = (3, 2, 1)
        results = args.results or args.root / "RESULTS.md"
    else:
        if args.report_only and not (args.root / PLAN_FILE).is_file():
            parser.error(
                f"--report-only: no benchmark under {args.root} (no {PLAN_FILE}); run it first"
            )
        args.root.mkdir(parents=True, exist_ok=True)
        plan = load_or_make_plan(args, args.root, workers, model)
        results = args.results or REPO / "docs" / "RESULTS.md"
    print(plan_markdown(plan))
    if args.plan_only:
        return
    args.root.mkdir(parents=True, exist_ok=True)
    noise_root = args.root / regimes[0].name
    load_start, start = os.getloadavg()[0], time.perf_counter()
    if args.report_only:  # the noise measured so far, no sweep: a run in progress is left alone
        outcomes = None
        measured = [
            json.loads(p.read_text()) for p in sorted((noise_root / "noise").glob("*.json"))
        ]
    else:
        check_code(args.root, args.accept_code_change)
        (args.root / PLAN_FILE).write_text(json.dumps(plan.to_json(), indent=1))
        outcomes = {}
        for regime in regimes:
            spec = sweep_for(regime, plan, args.root / regime.name, extra)
            outcomes[regime.name] = run_sweep(spec, parallel=workers)
        measured = measure(noise_root, "random", *noise_sizes)
    wall = time.perf_counter() - start
    reports = {}
    figures = results.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    for regime in regimes:
        report = write_report([args.root / regime.name], args.root / regime.name / "report")
        for f in report.files:
            if f.suffix == ".png":
                shutil.copy(f, figures / f"{regime.name}_{f.name}")
        reports[regime.name] = report.markdown
    write_results(
        results,
        regimes=regimes,
        plan=plan,
        reports=reports,
        figures=figures,
        root=args.root,
        measured=measured,
        command=command,
        wall_s=wall,
        load=(load_start, os.getloadavg()[0]),
        outcomes=outcomes,
        smoke=args.smoke,
    )
    failed = [o.name for sweep in (outcomes or {}).values() for o in sweep.failed]
    print(f"wrote {results} ({len(failed)} failed runs, {wall / 60:.1f} min)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
