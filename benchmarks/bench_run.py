"""`apl run` as a user first meets it: wall time per phase and peak memory, against the 10-minute target.

Runs the real command (`python -m apl run`, no arguments but an output dir) in a subprocess with
a fresh, empty APL_CACHE_DIR, as on a new machine: the offline judge is fitted, the baseline
completions generated, and every default round run. Prints the total against the 10-minute
budget of issue 5, the split into phases (from the ledger's `time/*` metrics: generate, score,
label, train, evaluate, plus start-up = the rest), the final win-rate, and the child's peak RSS.

    python benchmarks/bench_run.py [--repeats 1] [--threads N] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 600.0  # issue 5: at most 10 minutes on 2 cores
PHASES = ("generate", "score", "label", "train", "evaluate")


def run_once(overrides: list[str], threads: int | None) -> dict[str, float]:
    """One `apl run` in a fresh cache dir; its wall time, phase times, win-rate and peak RSS."""
    from apl.store.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, APL_CACHE_DIR=str(Path(tmp) / "cache"), HF_HUB_OFFLINE="1")
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        out = Path(tmp) / "run"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "apl", "run", f"output_dir={out}", *overrides],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"apl run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        with Ledger(out / "ledger.sqlite") as ledger:
            metrics = ledger.metrics()
        last = metrics[max(metrics)]
        row = {"wall": wall, "peak_rss_mb": max(peak_kb, before) / 1024}
        for phase in PHASES:
            row[phase] = last.get(f"time/{phase}") or 0.0  # cumulative over the run
        row["start-up and export"] = wall - sum(row[p] for p in PHASES)
        row["win_rate"] = last["eval/win_rate"]
        row["win_rate_stderr"] = last["eval/win_rate_stderr"]
        row["first_win_rate"] = metrics[min(metrics)]["eval/win_rate"]
        return row


def main() -> None:
    """Run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="Default: torch's own choice.")
    parser.add_argument("overrides", nargs="*", help="section.option=value for apl run")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = [run_once(args.overrides, args.threads) for _ in range(args.repeats)]
    print(f"apl run {' '.join(args.overrides)} on {os.cpu_count()} cores (load before: {load:.2f})")
    print(f"{'phase':<22}" + "".join(f"{'run ' + str(i + 1):>12}" for i in range(len(rows))))
    for key in (*PHASES, "start-up and export", "wall"):
        print(f"{key:<22}" + "".join(f"{r[key]:>11.1f}s" for r in rows))
    for r in rows:
        print(
            f"wall {r['wall']:.0f} s = {r['wall'] / BUDGET_S:.2f} x the 10-minute budget; peak RSS "
            f"{r['peak_rss_mb']:.0f} MB; win-rate {r['first_win_rate']:.3f} after round 1, "
            f"{r['win_rate']:.3f} ± {r['win_rate_stderr']:.3f} at the end"
        )


if __name__ == "__main__":
    main()
