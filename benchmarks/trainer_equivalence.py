"""Does the faster DPO trainer learn what the trainer before issue 16 learned? Retrain both.

For the first `--runs` complete random runs of a reset-mode sweep root (default: the label
benchmark's `runs/benchmark/reset`), the run's final labelled set is retrained from theta_0
`--seeds` times with each trainer:

  current   the trainer `apl run` uses (shared-prompt packing, forward chunks, the fused
            log-softmax gather, GPT-2's GELU as one kernel);
  before    the same trainer with those four changes taken away, as `bench_dpo.py`'s
            `apl before` peer (the trainer before issue 16).

Both trainers of one (run, seed) see the same data order, so the pair differs only by float
rounding and what reset-mode DPO makes of it. Each retrained model is evaluated the same way
(the run's evaluation prompts, baseline completions and evaluation stream, sampled with the
one-kernel GELU), so only the trainer differs. Prints both win-rates and expected win-rates
per (run, seed), their paired difference (current - before) with its standard error beside
the spread between training seeds, and each trainer's seconds. Results are saved per run
(`<root>/equivalence/<run>.json`), so a killed job resumes.

    python benchmarks/trainer_equivalence.py [ROOT] [--runs 2] [--seeds 3] [--threads 2]
        [--labels N] [--eval-prompts N] [--out DIR]   # the last three: a quick, smaller check
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = ("current", "before")
from final_eval import METRICS, judge_final, last_evaluated_round  # noqa: E402

logger = logging.getLogger("apl.benchmarks.trainer_equivalence")


def set_gelu(model, fused: bool) -> None:
    """GPT-2's GELU as one kernel (`load_model`'s choice) or as `gelu_new`'s five ops."""
    from transformers.activations import GELUTanh, NewGELUActivation

    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) in (GELUTanh, NewGELUActivation):
                setattr(module, name, GELUTanh() if fused else NewGELUActivation())


def train_as(trainer, preferences, which: str, seed: int) -> float:
    """Retrain from theta_0 with the `which` trainer on a fixed data order; returns seconds."""
    import torch

    from apl.policy import pair_scoring

    model = trainer._unwrapped()
    saved = (trainer.collator.shared_prompt, trainer.collator.max_tokens)
    fused = pair_scoring.gather_log_softmax

    def plain(logits, rows, tokens):
        return torch.log_softmax(logits.float(), dim=-1)[rows, tokens]

    if which == "before":
        trainer.collator.shared_prompt, trainer.collator.max_tokens = False, None
        pair_scoring.gather_log_softmax = plain
        set_gelu(model, fused=False)
    trainer.seed, trainer.rounds_trained = seed, 0  # the same data order for both trainers
    start = time.perf_counter()
    try:
        trainer.train(preferences)  # reset mode: back to theta_0 first
    finally:
        trainer.collator.shared_prompt, trainer.collator.max_tokens = saved
        pair_scoring.gather_log_softmax = fused
        set_gelu(model, fused=True)
    return time.perf_counter() - start


def measure(root: Path, out: Path, runs: int, seeds: int, labels: int | None, prompts: int | None):
    """Retrain and evaluate each chosen run with both trainers; cached per run under `out`."""
    from apl.loop.components import build_components, derive_seed
    from apl.reports.collect import load_runs
    from apl.store.ledger import Ledger

    groups, _ = load_runs([root])
    chosen = [
        r for rs in groups.values() for r in rs
        if r.config.acquisition.name == "random" and r.complete and r.config.dpo.mode == "reset"
    ][:runs]  # fmt: skip
    if not chosen:
        raise SystemExit(
            f"error: no complete reset-mode random run under {root}; pass a sweep root"
        )
    out.mkdir(parents=True, exist_ok=True)
    results, built = [], None
    for record in chosen:
        path = out / f"{record.path.name}.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
            continue
        config = record.config
        if built is None:
            built = build_components(config)
        built.config = config
        with Ledger(record.path / "ledger.sqlite") as ledger:
            eval_prompts = ledger.eval_prompts()[:prompts]
            baseline = ledger.baseline()
            preferences = ledger.preferences()[:labels]
        last = last_evaluated_round(record)
        eval_seed = derive_seed(config.seed, "eval", last)

        def judged() -> dict[str, float | None]:
            return judge_final(built, eval_prompts, baseline, eval_seed)

        entry = {"run": record.path.name, "labels": len(preferences), "prompts": len(eval_prompts)}
        entry["retrains"] = []
        for s in range(1, seeds + 1):
            seed = derive_seed(config.seed, "trainer-equivalence", s)
            row = {"seed": s}
            for which in TRAINERS:
                seconds = train_as(built.trainer, preferences, which, seed)
                row[which] = judged() | {"train_s": seconds}
                logger.info("%s seed %d, %s trainer: %s", record.path.name, s, which, row[which])
            entry["retrains"].append(row)
        path.write_text(json.dumps(entry, indent=1))
        results.append(entry)
    if built is not None:
        built.close()
    return results


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


def summary(results: list[dict]) -> str:
    """Per (run, seed) rows, then the paired differences and the spread between seeds."""
    lines = [
        "| run | seed | win-rate current | before | expected current | before | train s current | before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [(e["run"], r) for e in results for r in e["retrains"]]
    for run, r in rows:
        c, b = r["current"], r["before"]
        lines.append(
            f"| {run} | {r['seed']} | {c[METRICS[0]]:.3f} | {b[METRICS[0]]:.3f} | "
            f"{c[METRICS[1]]:.3f} | {b[METRICS[1]]:.3f} | {c['train_s']:.0f} | {b['train_s']:.0f} |"
        )
    lines.append("")
    for metric in METRICS:
        diffs = [r["current"][metric] - r["before"][metric] for _, r in rows]
        mean, se = _mean_se(diffs)
        # Spread between training seeds of one run, pooled over runs and both trainers.
        within = [
            statistics.variance([r[t][metric] for r in e["retrains"]])
            for e in results
            for t in TRAINERS
            if len(e["retrains"]) > 1
        ]
        sd = math.sqrt(statistics.fmean(within)) if within else math.nan
        lines.append(
            f"{metric}: current - before = {mean:+.2e} ± {se:.2e} (SE over {len(diffs)} paired "
            f"retrains), largest |difference| {max(abs(d) for d in diffs):.2e}; "
            f"sd between training seeds {sd:.4f}"
        )
    speed = [r["before"]["train_s"] / r["current"]["train_s"] for _, r in rows]
    lines.append(
        f"training time, before / current: median {statistics.median(speed):.2f}x "
        f"(range {min(speed):.2f}-{max(speed):.2f}x)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT / "runs/benchmark/reset")
    parser.add_argument("--runs", type=int, default=2, help="complete random runs to retrain")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per trainer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--labels", type=int, default=None, help="only the first N labels")
    parser.add_argument("--eval-prompts", type=int, default=None, help="only the first N")
    parser.add_argument("--out", type=Path, default=None, help="default ROOT/equivalence")
    args = parser.parse_args()
    import torch

    from apl.log import setup_logging

    setup_logging()
    torch.set_num_threads(args.threads)
    out = args.out or args.root / "equivalence"
    load = os.getloadavg()[0]
    results = measure(args.root, out, args.runs, args.seeds, args.labels, args.eval_prompts)
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; {args.threads} threads")
    print(summary(results))


if __name__ == "__main__":
    main()
