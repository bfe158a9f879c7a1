"""Win-rate of variant runs minus their base run with the same acquisition and seed, per round.

Runs that share a seed share their prompt pools, their first round's cold-start choice and the
evaluation prompts, so a per-seed difference removes most of the seed-to-seed spread that
swamps a comparison of means (docs/RESULTS.md). Prints mean difference ± standard error over
seeds, per variant and round. With `--against NAME`, every run is compared with the base
root's NAME run of its seed instead (e.g. each strategy against random).

    python benchmarks/paired_seeds.py runs/label-efficiency runs/certainty-variants runs/epochs5
    python benchmarks/paired_seeds.py runs/label-efficiency runs/label-efficiency --against random
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict
from pathlib import Path

from apl.reports.collect import RunRecord, load_runs


def records_under(root: Path) -> list[RunRecord]:
    """Every run under a sweep root, as `apl report` loads it."""
    groups, _ = load_runs([root])
    return [record for records in groups.values() for record in records]


def win_rates(record: RunRecord) -> dict[int, float]:
    """{round: eval/win_rate} for the run's evaluated rounds."""
    return {
        r: m["eval/win_rate"]
        for r, m in record.metrics.items()
        if m.get("eval/win_rate") is not None
    }


def main() -> None:
    """Print one Markdown table of paired differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="Sweep root holding the base runs.")
    parser.add_argument("variants", nargs="+", type=Path, help="Sweep roots of variant runs.")
    parser.add_argument("--against", default=None, help="Pair by seed with this acquisition.")
    args = parser.parse_args()
    base = {
        (r.config.acquisition.name, r.seed): win_rates(r)
        for r in records_under(args.base)
        if args.against in (None, r.config.acquisition.name)
    }
    diffs: dict[tuple[str, int], list[float]] = defaultdict(list)
    for root in args.variants:
        for record in records_under(root):
            name = record.config.acquisition.name
            if name == args.against:
                continue
            key = (args.against or name, record.seed)
            if key not in base:
                continue
            label = f"{root.name}/" + re.sub(r"-seed\d+", "", record.path.name)
            for round_, value in win_rates(record).items():
                if round_ in base[key]:
                    diffs[(label, round_)].append(value - base[key][round_])
    print("| variant | round | seeds | minus base, mean ± SE |")
    print("|---|---:|---:|---:|")
    for (label, round_), values in sorted(diffs.items()):
        se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
        mean = statistics.fmean(values)
        print(f"| {label} | {round_} | {len(values)} | {mean:+.3f} ± {se:.3f} |")


if __name__ == "__main__":
    main()
