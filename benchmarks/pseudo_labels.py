"""How right were adpo's pseudo-labels, and what did they do to its win-rate? (exploratory)

Post hoc: written after docs/RESULTS.md's benchmark found adpo below random (issue 11), so it is
not part of the pre-registered protocol and RESULTS.md reports it as exploratory. For each
complete run under ROOT whose ledger holds pseudo-labels (`--seeds` picks some):

1. Agreement (no training; seconds). Every pseudo-labelled pair is judged by the run's own
   oracle (the offline judge is free and deterministic): how often the judge prefers the
   policy's choice, the judge's mean P(policy's choice), and the policy's own confidence in it,
   per round. Beside it, the same runs' paid pairs from round 2 on: how often the judge agreed
   with the policy's sign there (the least-confident pairs, which adpo pays for).
2. `--retrain` (about 20 min per run at one thread). The run's final round is retrained from
   theta_0 twice with the run's own training seed for that round: on every label it trained
   on (paid + pseudo; this reproduces the run, as a check) and on its paid labels alone. Both
   are evaluated with the run's own evaluation prompts, baseline and sampling stream, so their
   difference is what the final round's pseudo-labels did (earlier rounds' selection still
   came from models trained with them). The paid-only model is also set against the random run
   of the same seed: what least-confident selection alone did.

What would point at the pseudo-labels as the cause of adpo's deficit (stated before running):
agreement well below 1 (near the 0.57-0.62 the calibration table gives random's pairs at
confidence >= 0.9), and the paid-only retrain back near random's win-rate. Results are cached
per run (`<ROOT>/pseudo/<run>.json`), so a killed job resumes.

    python benchmarks/pseudo_labels.py runs/benchmark/reset [--retrain] [--seeds 0 2 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from final_eval import METRICS, judge_final, last_evaluated_round  # noqa: E402

logger = logging.getLogger("apl.benchmarks.pseudo_labels")


def agreement(built, ledger) -> list[dict]:
    """One row per labelled pair after round 1: round, source, confidence, judge agreement."""
    from apl.oracles import JudgeRequest
    from apl.types import Verdict

    rows, pseudo, extras_of = [], [], {}
    for item in ledger.labelled():
        if item.round < 2:
            continue  # cold start: policy = reference, no preference of its own
        if item.round not in extras_of:
            extras_of[item.round] = {c.id: c.pair.extras for c in ledger.candidates(item.round)}
        extras = extras_of[item.round][item.candidate_id]
        p_a = extras.get("bt_prob")
        if p_a is None or p_a == 0.5:
            continue
        policy_a = p_a > 0.5
        row = {"round": item.round, "source": item.source, "confidence": max(p_a, 1 - p_a)}
        if item.source == "pseudo":
            pseudo.append((row, item))
        else:
            row["agree"] = float((item.judgement.verdict is Verdict.A) == policy_a)
            judged_p = item.judgement.probability
            if judged_p is not None:
                row["judge_p"] = judged_p if policy_a else 1 - judged_p
            rows.append(row)
    # A pseudo-label's preference holds the policy's choice as `chosen`: put it in slot A.
    requests = [
        JudgeRequest(item.preference.prompt.judge_text, item.preference.chosen.text,
                     item.preference.rejected.text)
        for _, item in pseudo
    ]  # fmt: skip
    for (row, _), judgement in zip(pseudo, built.oracle.judge_batch(requests), strict=True):
        row["agree"] = float(judgement.verdict is Verdict.A)
        if judgement.probability is not None:
            row["judge_p"] = judgement.probability
        rows.append(row)
    return rows


def retrain(built, record, ledger) -> dict:
    """The final round retrained on all its labels and on the paid ones alone, both judged."""
    from apl.loop.components import derive_seed

    config = record.config
    last = last_evaluated_round(record)
    prompts, baseline = ledger.eval_prompts(), ledger.baseline()
    out = {"recorded": {m: record.metrics[last].get(m) for m in METRICS}}
    for name, source in (("all", None), ("paid", "oracle")):
        preferences = ledger.preferences(source=source)
        # the run's own seed for its last training (one train() per round in reset mode)
        built.trainer.seed, built.trainer.rounds_trained = config.seed, last - 1
        built.trainer.train(preferences)
        out[name] = judge_final(built, prompts, baseline, derive_seed(config.seed, "eval", last))
        out[name]["labels"] = len(preferences)
        logger.info("%s, %s labels: %s", record.path.name, name, out[name])
    return out


def measure(root: Path, seeds: list[int] | None, with_retrain: bool) -> list[dict]:
    """Agreement (and retrains) for each complete run with pseudo-labels; cached per run."""
    from apl.loop.components import build_components
    from apl.reports.collect import load_runs
    from apl.store.ledger import Ledger

    groups, _ = load_runs([root])
    chosen = [
        r for rs in groups.values() for r in rs
        if r.complete and r.pseudo_labels > 0 and (seeds is None or r.config.seed in seeds)
    ]  # fmt: skip
    if not chosen:
        raise SystemExit(f"error: no complete run with pseudo-labels under {root}; pass a root")
    out_dir = root / "pseudo"
    out_dir.mkdir(exist_ok=True)
    results, built = [], None
    for record in chosen:
        path = out_dir / f"{record.path.name}.json"
        entry = json.loads(path.read_text()) if path.is_file() else None
        if entry is not None and (not with_retrain or "retrain" in entry):
            results.append(entry)
            continue
        if built is None:
            built = build_components(record.config)
        built.config = record.config  # evaluation reads the seed and sizes from here
        with Ledger(record.path / "ledger.sqlite") as ledger:
            if entry is None:
                entry = {"run": record.path.name, "seed": record.config.seed}
                entry["pairs"] = agreement(built, ledger)
                path.write_text(json.dumps(entry, indent=1))
            if with_retrain:
                entry["retrain"] = retrain(built, record, ledger)
                path.write_text(json.dumps(entry, indent=1))
        results.append(entry)
    if built is not None:
        built.close()
    return results


def _mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return f"{statistics.fmean(values):+.3f} ± {se:.3f}"


def random_finals(root: Path) -> dict[int, dict[str, float | None]]:
    """{seed: final metrics} of the complete random runs under `root`."""
    from apl.reports.collect import load_runs

    groups, _ = load_runs([root])
    return {
        r.config.seed: r.metrics[last_evaluated_round(r)]
        for rs in groups.values()
        for r in rs
        if r.complete and r.config.acquisition.name == "random"
    }


def summary(results: list[dict], random: dict[int, dict]) -> str:
    """Agreement per source and round, then the retrains' paired differences."""
    cells = defaultdict(list)
    for entry in results:
        for row in entry["pairs"]:
            cells[(row["source"], row["round"])].append(row)
    lines = [
        f"{len(results)} runs: {', '.join(e['run'] for e in results)}",
        "",
        "| labels | round | pairs | policy confidence | judge agrees | judge's P(policy's choice) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (source, round_), rows in sorted(cells.items()):
        judged = [r["judge_p"] for r in rows if "judge_p" in r]
        lines.append(
            f"| {source} | {round_} | {len(rows)} | "
            f"{statistics.fmean(r['confidence'] for r in rows):.3f} | "
            f"{statistics.fmean(r['agree'] for r in rows):.3f} | "
            f"{statistics.fmean(judged) if judged else math.nan:.3f} |"
        )
    retrained = [e for e in results if "retrain" in e]
    if retrained:
        lines += ["", f"Final round retrained ({len(retrained)} runs; mean ± SE over runs):", ""]
        lines += ["| metric | all - recorded | paid only - all | paid only - random |"]
        lines += ["|---|---:|---:|---:|"]
        for m in METRICS:
            t = [e["retrain"] for e in retrained]
            vs_random = [
                e["retrain"]["paid"][m] - random[e["seed"]][m]
                for e in retrained
                if e["seed"] in random
            ]
            lines.append(
                f"| `{m}` | {_mean_se([x['all'][m] - x['recorded'][m] for x in t])} | "
                f"{_mean_se([x['paid'][m] - x['all'][m] for x in t])} | {_mean_se(vs_random)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a sweep root, e.g. runs/benchmark/reset")
    parser.add_argument("--retrain", action="store_true", help="also retrain the final round")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="only these seeds")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from apl.log import setup_logging

    setup_logging()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    results = measure(args.root, args.seeds, args.retrain)
    print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; {args.threads} threads")
    print(summary(results, random_finals(args.root)))


if __name__ == "__main__":
    main()
