"""The previous offline IMDB comparison: random, entropy, certainty, hybrid x >= 5 seeds.

Superseded by benchmarks/benchmark.py (docs/PROTOCOL.md), which writes docs/RESULTS.md; this
one now writes RESULTS.md beside its runs (its 2026-11-27 output is docs/results-2026-11-27/).

1. Reads `apl run`'s offline defaults from `apl.config` (nothing about the protocol is
   hard-coded here): query size M, pool size S, budget B, DPO epochs E, eval prompts N.
2. Calibrates the policy's speed on this machine at one thread (DPO pairs/s, scored and sampled
   sequences/s), estimates each strategy's run time, and shrinks M and S (same S/M ratio) and
   the number of rounds T until the whole sweep fits `--hours` on the cores here. E, the
   learning rate and every other default stay as calibrated. The arithmetic goes into RESULTS.md.
3. Runs `apl sweep` (runs skip if complete, so a killed benchmark resumes), then `apl report`,
   and writes RESULTS.md: the command, the plan, the report, and what it shows.

    python benchmarks/label_efficiency.py                     # ~1 h on 2 cores; the lead runs it
    python benchmarks/label_efficiency.py --plan-only         # print the plan, run nothing
    python benchmarks/label_efficiency.py --smoke --model DIR # minutes, tiny model, not docs/
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from label_efficiency_doc import write_results  # noqa: E402

STRATEGIES = ("random", "entropy", "certainty", "hybrid")
STARTUP_S = 30.0  # measured: import, model load, 22k IMDB prompts tokenised, judge loaded


@dataclass(frozen=True)
class Rates:
    """Per-worker speeds at one thread (the sweep gives each run one core)."""

    train_pairs_s: float  # DPO pairs/s: forward + backward of chosen and rejected
    score_seqs_s: float  # sequences/s, forward only (reference log-probs)
    sample_seqs_s: float  # completions/s from the KV-cache sampler


@dataclass(frozen=True)
class Plan:
    """Sizes for one sweep and its estimated wall time."""

    query_size: int
    pool_size: int
    num_rounds: int
    epochs: int
    eval_prompts: int
    seeds: int
    workers: int
    run_s: dict[str, float]

    @property
    def total_s(self) -> float:
        """All runs' estimated seconds over the workers (each worker one core)."""
        return sum(self.run_s.values()) * self.seeds / self.workers


def calibrate(model_name: str, batch: int = 32, seconds: float = 3.0) -> Rates:
    """Time the policy's training step, scoring and sampling at one thread."""
    import torch

    from apl.config import ModelConfig
    from apl.policy.model import load_model
    from apl.policy.sampling import sample_completions

    torch.set_num_threads(1)
    loaded = load_model(ModelConfig(model_name_or_path=model_name))
    model, vocab = loaded.model, loaded.model.config.vocab_size
    ids = torch.randint(0, vocab, (2 * batch, 36), device=loaded.device)  # 12 prompt + 24 new

    def timed(step, per_call: int) -> float:
        step()
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            step()
            calls += 1
        return per_call * calls / (time.perf_counter() - start)

    def train_step() -> None:
        model.train()
        with loaded.autocast():
            model(ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)

    def score_step() -> None:
        model.eval()
        with torch.no_grad(), loaded.autocast():
            model(ids)

    prompts = [ids[i, :12].tolist() for i in range(batch)]

    def sample_step() -> None:
        model.eval()
        sample_completions(
            model,
            loaded.tokenizer,
            prompts,
            num_samples=2,
            batch_size=2 * batch,
            autocast_dtype=loaded.autocast_dtype,
        )

    return Rates(
        timed(train_step, batch), timed(score_step, 2 * batch), timed(sample_step, 2 * batch)
    )


def run_seconds(strategy: str, M: int, S: int, T: int, E: int, N: int, rates: Rates) -> float:
    """Estimated seconds of one run: startup, baseline, and per round generate/score/train/eval."""
    from apl.acquisition import ACQUISITIONS

    acq = ACQUISITIONS.build(strategy, {})
    kept = math.ceil(M * (1 + acq.reserve))
    samples = getattr(acq, "num_samples", 0) * S * acq.pool_multiplier  # entropy estimates
    pairs = S if strategy in ("certainty", "hybrid") else kept
    seconds = STARTUP_S + N / rates.sample_seqs_s
    for t in range(1, T + 1):
        seconds += (samples + 2 * pairs + N) / rates.sample_seqs_s
        seconds += (2 * pairs if t > 1 else 2 * M) / rates.score_seqs_s
        seconds += E * t * M / rates.train_pairs_s  # reset mode: every label, every epoch
    return seconds


def make_plan(
    defaults, rates: Rates, hours: float, seeds: int, workers: int
) -> tuple[Plan, list[Plan]]:
    """The largest labelled set (>= 3 rounds where the defaults have them) that fits `hours`."""
    M0, S0, T0 = defaults.loop.query_size, defaults.loop.pool_size, defaults.loop.num_rounds
    E, N = defaults.dpo.num_train_epochs, defaults.evaluation.num_prompts
    tried = []
    for divisor in (1, 2, 4, 8):
        M = max(8, M0 // divisor)
        S = max(M, S0 * M // M0)
        for T in range(T0, min(T0, 3) - 1, -1):
            run_s = {s: run_seconds(s, M, S, T, E, N, rates) for s in STRATEGIES}
            tried.append(Plan(M, S, T, E, N, seeds, workers, run_s))
    fitting = [p for p in tried if p.total_s <= hours * 3600]
    best = max(fitting, key=lambda p: (p.num_rounds * p.query_size, p.num_rounds), default=None)
    return best or min(tried, key=lambda p: p.total_s), tried


def earlier_sizes(root: Path) -> tuple[int, int, int] | None:
    """(M, S, T) of runs an earlier invocation left under `root`, so a resumed benchmark keeps them."""
    from apl.config import load_config

    for config in sorted(root.glob("*/config.yaml")):
        loop = load_config(config).loop
        return loop.query_size, loop.pool_size, loop.num_rounds
    return None


def main() -> None:
    """Plan, sweep, report, write RESULTS.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours", type=float, default=1.0, help="Wall-time budget for the sweep.")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=None, help="Runs at once (default: cores).")
    parser.add_argument("--model", default=None, help="Policy (default: apl run's default model).")
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "label-efficiency")
    parser.add_argument("--results", type=Path, default=None, help="Default ROOT/RESULTS.md.")
    parser.add_argument("--plan-only", action="store_true", help="Print the plan; run nothing.")
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes, 2 seeds; not into docs/.")
    parser.add_argument(
        "--replan", action="store_true", help="Plan afresh even if --root holds earlier runs."
    )
    args = parser.parse_args()

    from apl.config import APLConfig
    from apl.log import setup_logging
    from apl.reports.markdown import write_report
    from apl.sweep import build_sweep, run_sweep
    from apl.sweep.runner import available_cores

    setup_logging()
    defaults = APLConfig()
    model = args.model or defaults.model.model_name_or_path
    workers = args.parallel or available_cores()
    command = "python benchmarks/label_efficiency.py " + " ".join(sys.argv[1:])
    if args.smoke:
        if args.model is None:
            parser.error("--smoke needs --model DIR (e.g. the tests' tiny GPT-2)")
        seeds, E = 2, 2
        plan = Plan(8, 16, 2, E, 8, seeds, workers, {s: 0.0 for s in STRATEGIES})
        tried, rates = [plan], None
        extra = {
            "dpo": {"num_train_epochs": E, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
            "generation": {"batch_size": 32},
            "model": {"model_name_or_path": model, "bf16": False},
        }
        results = args.results or args.root / "RESULTS.md"
    else:
        rates = calibrate(model)
        plan, tried = make_plan(defaults, rates, args.hours, args.seeds, workers)
        earlier = None if args.replan else earlier_sizes(args.root)
        if earlier is not None and earlier != (plan.query_size, plan.pool_size, plan.num_rounds):
            M, S, T = earlier
            run_s = {
                s: run_seconds(s, M, S, T, plan.epochs, plan.eval_prompts, rates)
                for s in STRATEGIES
            }
            plan = Plan(M, S, T, plan.epochs, plan.eval_prompts, args.seeds, workers, run_s)
            print(f"resuming the plan of the runs in {args.root} (--replan to plan afresh)")
        extra = {"model": {"model_name_or_path": model}}
        results = args.results or args.root / "RESULTS.md"
    print(
        f"plan: M={plan.query_size} S={plan.pool_size} T={plan.num_rounds} E={plan.epochs} "
        f"N={plan.eval_prompts} x {plan.seeds} seeds, ~{plan.total_s / 60:.0f} min on {workers} workers"
    )
    if args.plan_only:
        for p in tried:
            print(
                f"  M={p.query_size:3d} S={p.pool_size:4d} T={p.num_rounds}: {p.total_s / 60:7.1f} min"
            )
        return
    base = extra | {
        "loop": {
            "query_size": plan.query_size,
            "pool_size": plan.pool_size,
            "label_budget": plan.query_size * plan.num_rounds,
        },
        "evaluation": {"num_prompts": plan.eval_prompts},
    }
    grid = {"acquisition.name": list(STRATEGIES), "seed": list(range(plan.seeds))}
    spec = build_sweep(base, grid, args.root, source="label_efficiency")
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    sweep = run_sweep(spec, parallel=workers)
    wall = time.perf_counter() - start
    report = write_report([args.root], args.root / "report")
    figures = results.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    for f in report.files:
        shutil.copy(f, figures / f.name)
    write_results(
        results,
        report.markdown,
        figures,
        command=command,
        plan=plan,
        tried=tried,
        rates=rates,
        wall_s=wall,
        load=(load_start, os.getloadavg()[0]),
        failed=[o.name for o in sweep.failed],
        smoke=args.smoke,
        root=args.root,
        started=sum(o.action != "skip" for o in sweep.outcomes),
        skipped=sum(o.action == "skip" for o in sweep.outcomes),
        run_config=spec.runs[0].config,
    )
    print(f"wrote {results} ({len(sweep.failed)} failed runs, {wall / 60:.1f} min)")
    sys.exit(1 if sweep.failed else 0)


if __name__ == "__main__":
    main()
