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
import sqlite3
import statistics
from collections import defaultdict
from pathlib import Path

import yaml


def run_key(run: Path) -> tuple[str, int]:
    """(acquisition name, seed) from a run's config."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    return config.get("acquisition", {}).get("name", "certainty"), int(config.get("seed", 0))


def win_rates(run: Path) -> dict[int, float]:
    """{round: eval/win_rate} from the run's ledger."""
    db = sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT round, value FROM metrics WHERE key = 'eval/win_rate'").fetchall()
    db.close()
    return dict(rows)


def runs_under(root: Path) -> list[Path]:
    """Run directories directly under a sweep root."""
    return sorted(p.parent for p in root.glob("*/ledger.sqlite"))


def main() -> None:
    """Print one Markdown table of paired differences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="Sweep root holding the base runs.")
    parser.add_argument("variants", nargs="+", type=Path, help="Sweep roots of variant runs.")
    parser.add_argument("--against", default=None, help="Pair by seed with this acquisition.")
    args = parser.parse_args()
    base: dict = {run_key(run): win_rates(run) for run in runs_under(args.base)}
    if args.against is not None:
        base = {seed: rates for (name, seed), rates in base.items() if name == args.against}
    diffs: dict[tuple[str, int], list[float]] = defaultdict(list)
    for root in args.variants:
        for run in runs_under(root):
            key = run_key(run)
            if args.against is not None:
                if key[0] == args.against:
                    continue
                key = key[1]
            if key not in base:
                continue
            label = f"{root.name}/" + re.sub(r"-seed\d+", "", run.name)
            for round_, value in win_rates(run).items():
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
