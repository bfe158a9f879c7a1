"""Where a run's final win-rate spread comes from, measured, and what it lets a benchmark see.

For the first `--runs` finished runs of one strategy (random, by default) under a sweep root:

- evaluation sampling: the final model re-evaluated `--evals` times with other evaluation
  sampling seeds (same prompts, same baseline completions);
- DPO training: the final labelled set retrained from theta_0 `--retrains` times with other
  training seeds (reset mode; the data order is DPO's only randomness with dropout off), each
  evaluated with its own fresh evaluation stream (so their spread is training plus evaluation
  noise, and the evaluation term measured above is subtracted);
- the choice of labels (and the seed's evaluation prompts): what is left of the spread over
  seeds once the two above are taken out (method of moments, floored at 0).

Each measurement is saved as it finishes (`<root>/noise/<run>.json`), so a killed job resumes.
`analyse` then gives the components as standard deviations, and the minimum detectable
difference (2 SE of a paired difference) at 5, 10 and 20 seeds, from the paired differences
of every strategy against random in the same root.

    python benchmarks/noise.py runs/benchmark/reset [--runs 5 --evals 4 --retrains 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from final_eval import METRICS, judge_final, last_evaluated_round  # noqa: E402

logger = logging.getLogger("apl.benchmarks.noise")  # under apl: setup_logging shows it

SEEDS_SHOWN = (5, 10, 20)


def measure(root: Path, strategy: str, runs: int, evals: int, retrains: int) -> list[dict]:
    """Re-evaluate and retrain the first `runs` complete runs of `strategy`; cached per run."""
    import torch
    from transformers import AutoModelForCausalLM

    from apl.loop.components import build_components, derive_seed
    from apl.reports.collect import load_runs
    from apl.store.ledger import Ledger

    groups, _ = load_runs([root])
    chosen = [
        r for rs in groups.values() for r in rs
        if r.config.acquisition.name == strategy and r.complete
    ][:runs]  # fmt: skip
    out_dir = root / "noise"
    out_dir.mkdir(exist_ok=True)
    results, built = [], None
    for record in chosen:
        path = out_dir / f"{record.path.name}.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
            continue
        config = record.config
        if built is None:
            built = build_components(config)
        built.config = config  # evaluation reads the seed and sizes from here
        final = AutoModelForCausalLM.from_pretrained(record.path / "final_model")
        with Ledger(record.path / "ledger.sqlite") as ledger:
            prompts = ledger.eval_prompts()
            baseline = ledger.baseline()
            preferences = ledger.preferences()
        last = last_evaluated_round(record)

        model = built.loaded.model
        entry = {
            "run": record.path.name,
            "seed": config.seed,
            "labels": len(preferences),
            "original": {m: record.metrics[last].get(m) for m in METRICS},
            "evals": [],
            "retrains": [],
        }
        with torch.no_grad():
            model.load_state_dict(final.state_dict())
        for r in range(1, evals + 1):
            entry["evals"].append(
                judge_final(built, prompts, baseline, derive_seed(config.seed, "noise-eval", r))
            )
            logger.info(
                "%s: re-evaluation %d/%d %s", record.path.name, r, evals, entry["evals"][-1]
            )
        trainer = built.trainer
        for r in range(1, retrains + 1):
            trainer.seed = derive_seed(config.seed, "noise-train", r)
            trainer.train(preferences)  # reset mode: back to theta_0 first
            # A fresh evaluation stream, so the retrains' spread is training + evaluation noise
            # exactly; the run's own stream would share part of its evaluation noise with the
            # original (common random numbers) and understate the training term.
            entry["retrains"].append(
                judge_final(
                    built, prompts, baseline, derive_seed(config.seed, "noise-retrain-eval", r)
                )
            )
            logger.info(
                "%s: retrain %d/%d %s", record.path.name, r, retrains, entry["retrains"][-1]
            )
        path.write_text(json.dumps(entry, indent=1))
        results.append(entry)
    if built is not None:
        built.close()
    return results


def _var(values: list[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else math.nan


@dataclass(frozen=True)
class Spread:
    """Variance components of one metric's final value (as standard deviations)."""

    metric: str
    total_sd: float  # over seeds, the strategy's runs
    eval_sd: float  # the same model, other evaluation samples
    train_sd: float  # the same labels, other training seeds (evaluation noise taken out)
    labels_sd: float  # the rest: which labels were bought (and the seed's eval prompts)
    runs: int
    seeds: int


def decompose(measured: list[dict], finals: list[float], metric: str) -> Spread | None:
    """Method-of-moments decomposition of the spread of `finals` (one final value per seed)."""
    evals, retrains = [], []
    for entry in measured:
        original = entry["original"].get(metric)
        values = [e[metric] for e in entry["evals"] if e.get(metric) is not None]
        again = [t[metric] for t in entry["retrains"] if t.get(metric) is not None]
        if original is None:
            continue
        if values:
            evals.append(_var([original, *values]))
        if again:
            retrains.append(_var([original, *again]))
    if not evals or len(finals) < 2:
        return None
    v_eval = statistics.fmean(evals)
    v_retrain = statistics.fmean(retrains) if retrains else v_eval
    v_total = _var(finals)
    v_train = max(0.0, v_retrain - v_eval)
    v_labels = max(0.0, v_total - v_eval - v_train)
    return Spread(
        metric,
        math.sqrt(v_total),
        math.sqrt(v_eval),
        math.sqrt(v_train),
        math.sqrt(v_labels),
        len(measured),
        len(finals),
    )


def paired_sd(root: Path, metric: str) -> tuple[float, int, list[tuple[str, int, float, int]]]:
    """Pooled sd of (strategy - random) paired by seed over complete runs, and the rows pooled.

    Rows: (strategy, labels, sd, pairs) for every strategy and size with >= 2 pairs; the pooled
    sd is the root of their pair-weighted mean variance.
    """
    from apl.reports.collect import load_runs
    from apl.reports.paired import paired_differences
    from apl.reports.tables import random_references

    groups, _ = load_runs([root])
    refs = random_references(groups)
    groups = {k: [r for r in runs if r.complete] for k, runs in groups.items()}
    rows = []
    for d in paired_differences(groups, refs, metric):
        # identical by construction (the shared round 1 of rules random at cold start): skip
        if len(d.seeds) > 1 and not (d.stderr == 0 and d.mean == 0):
            rows.append((d.strategy, d.labels, d.stderr * math.sqrt(len(d.seeds)), len(d.seeds)))
    if not rows:
        return math.nan, 0, rows
    weight = sum(n - 1 for *_, n in rows)
    pooled = math.sqrt(sum((sd**2) * (n - 1) for _, _, sd, n in rows) / weight)
    return pooled, sum(n for *_, n in rows), rows


def binary_per_expected(*roots: Path) -> float:
    """Slope (through 0) of binary on expected paired differences over every comparison in
    `roots` (every regime): multiplies an expected win-rate difference into win-rate units."""
    from apl.reports.collect import load_runs
    from apl.reports.paired import paired_differences
    from apl.reports.tables import random_references

    xs, ys = [], []
    for root in roots:
        groups, _ = load_runs([root])
        refs = random_references(groups)
        groups = {k: [r for r in runs if r.complete] for k, runs in groups.items()}
        binary = {(d.strategy, d.labels): d for d in paired_differences(groups, refs, METRICS[0])}
        for d in paired_differences(groups, refs, METRICS[1]):
            b = binary.get((d.strategy, d.labels))
            if b is not None and b.seeds == d.seeds:
                xs.append(d.mean)
                ys.append(b.mean)
    den = sum(x * x for x in xs)
    return sum(x * y for x, y in zip(xs, ys)) / den if den > 0 else math.nan


def noise_markdown(
    root: Path, measured: list[dict], strategy: str = "random", slope: float | None = None
) -> str:
    """Components table, paired sd, and the minimum detectable difference at 5/10/20 seeds.

    The total spread is over the strategy's complete runs (one final value per seed, at the
    full label budget); `slope` (default: this root's) is `binary_per_expected`.
    """
    from apl.reports.collect import load_runs

    groups, _ = load_runs([root])
    runs = [
        r for rs in groups.values() for r in rs
        if r.config.acquisition.name == strategy and r.complete
    ]  # fmt: skip
    lines = [
        "| metric | seeds | total sd | evaluation sampling | DPO training | labels (and seed) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for metric in METRICS:
        finals = []
        for r in runs:
            values = r.metric_by_size(metric)
            if values:
                finals.append(values[max(values)])
        c = decompose(measured, finals, metric)
        if c is None:
            continue
        parts = [c.eval_sd, c.train_sd, c.labels_sd]
        total = sum(p * p for p in parts) or 1.0
        cells = [f"{p:.3f} ({p * p / total:.0%})" for p in parts]
        lines.append(f"| `{metric}` | {c.seeds} | {c.total_sd:.3f} | " + " | ".join(cells) + " |")
    slope = binary_per_expected(root) if slope is None else slope
    lines += [
        "",
        f"Measured on {len(measured)} {strategy} runs: each final model re-evaluated "
        f"{len(measured[0]['evals']) if measured else 0} more times, each final labelled set "
        f"retrained {len(measured[0]['retrains']) if measured else 0} more times; shares are of "
        "the summed variances.",
        "",
        "| metric | paired sd | pairs | 2 SE at "
        + " | ".join(f"{n} seeds" for n in SEEDS_SHOWN)
        + " |",
        "|---|---:|---:|" + "---:|" * len(SEEDS_SHOWN),
    ]
    for metric in METRICS:
        sd, pairs, _ = paired_sd(root, metric)
        if math.isnan(sd):
            continue
        mdd = [2 * sd / math.sqrt(n) for n in SEEDS_SHOWN]
        cells = " | ".join(f"{m:.3f}" for m in mdd)
        if metric == METRICS[1] and not math.isnan(slope):
            cells = " | ".join(f"{m:.3f} (~{m * slope:.3f} win-rate)" for m in mdd)
        lines.append(f"| `{metric}` | {sd:.3f} | {pairs} | {cells} |")
    if not math.isnan(slope):
        lines += [
            "",
            f"Across every strategy and size, a paired win-rate difference is about {slope:.2f} "
            "times the expected win-rate difference of the same comparison (least-squares slope "
            "through 0), so the expected win-rate's 2 SE is also shown in win-rate units.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure (resumably) and print the decomposition for one sweep root."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="A sweep root with finished reset-mode runs.")
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--evals", type=int, default=4)
    parser.add_argument("--retrains", type=int, default=3)
    args = parser.parse_args()
    from apl.log import setup_logging

    setup_logging()
    measured = measure(args.root, args.strategy, args.runs, args.evals, args.retrains)
    print(noise_markdown(args.root, measured, args.strategy), end="")


if __name__ == "__main__":
    main()
