"""`apl run` as a user first meets it: wall time per phase and peak memory, against the budgets.

Runs the real command (`python -m apl run`, no arguments but an output dir) in a subprocess with
a fresh, empty APL_CACHE_DIR, as on a new machine: the offline judge is fitted, the baseline
completions generated, and every default round run. Prints the total against the 10-minute
budget of issue 5 and the 3-minute target of issue 16, the split into phases (from the
ledger's `time/*` metrics: generate, score, label, train, evaluate, plus start-up = the rest),
the final win-rate, and the run's peak resident memory (the child's own `ru_maxrss`, from
`wait4`, so each run is measured apart). The APL cache starts empty; torch.compile's kernel
cache is the machine's own (a user's second run) unless --fresh-inductor-cache.

With `--revs`, the same run is also made with apl's source as it was at each git revision
(extracted to a scratch directory and put first on the child's PYTHONPATH), interleaved with
this working tree's: before/after, or one change at a time, in one command.

    python benchmarks/bench_run.py [--repeats 1] [--threads N] [--revs REV ...] [overrides ...]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600.0  # issue 5: at most 10 minutes on 2 cores
TARGET_S = 180.0  # issue 16: under 3 minutes on 2 cores
PHASES = ("generate", "score", "label", "train", "evaluate")


def source_at(rev: str, into: Path) -> Path:
    """apl's `src/` as it was at git revision `rev`, extracted under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into / rev, filter="data")
    return into / rev / "src"


def run_once(
    overrides: list[str], threads: int | None, src: Path, fresh_inductor: bool
) -> dict[str, float]:
    """One `apl run` of the apl in `src`, in a fresh cache dir; wall, phases, win-rate, peak RSS."""
    from apl.store.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, APL_CACHE_DIR=str(Path(tmp) / "cache"), HF_HUB_OFFLINE="1")
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
        if fresh_inductor:  # torch.compile's kernels built from scratch, as on a new machine
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        out = Path(tmp) / "run"
        log = Path(tmp) / "stderr.log"
        start = time.perf_counter()
        with open(log, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "apl", "run", f"output_dir={out}", *overrides],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"apl run failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with Ledger(out / "ledger.sqlite") as ledger:
            metrics = ledger.metrics()
        last = metrics[max(metrics)]
        row = {"wall": wall, "peak_rss_mb": usage.ru_maxrss / 1024}  # kB on Linux
        for phase in PHASES:
            row[phase] = last.get(f"time/{phase}") or 0.0  # cumulative over the run
        row["start-up and export"] = wall - sum(row[p] for p in PHASES)
        row["win_rate"] = last["eval/win_rate"]
        row["win_rate_stderr"] = last["eval/win_rate_stderr"]
        row["first_win_rate"] = metrics[min(metrics)]["eval/win_rate"]
        row["load"] = os.getloadavg()[0]
        return row


def main() -> None:
    """Run every source in turn, `--repeats` times, and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="Default: torch's own choice.")
    parser.add_argument("--revs", nargs="*", default=[], help="git revisions to run as well")
    parser.add_argument(
        "--fresh-inductor-cache",
        action="store_true",
        help="Compile from an empty inductor cache (default: the machine's, as a second run)",
    )
    parser.add_argument("overrides", nargs="*", help="section.option=value for apl run")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_run_src_") as scratch:
        sources = {rev: source_at(rev, Path(scratch)) for rev in args.revs}
        sources["this tree"] = ROOT / "src"
        columns = []
        for repeat in range(args.repeats):
            for name, src in sources.items():
                row = run_once(args.overrides, args.threads, src, args.fresh_inductor_cache)
                columns.append((f"{name} #{repeat + 1}", row))
                print(f"{name} #{repeat + 1}: wall {row['wall']:.0f} s", flush=True)
    print(
        f"\napl run {' '.join(args.overrides)} on {os.cpu_count()} cores, threads "
        f"{args.threads or 'torch default'}, "
        f"{'an empty' if args.fresh_inductor_cache else 'the shared'} inductor cache "
        f"(load average before: {load:.2f})"
    )
    width = max(14, *(len(name) + 2 for name, _ in columns))
    print(f"{'':<22}" + "".join(f"{name:>{width}}" for name, _ in columns))
    for key in (*PHASES, "start-up and export", "wall"):
        print(f"{key:<22}" + "".join(f"{r[key]:>{width - 1}.1f}s" for _, r in columns))
    print(
        f"{'peak RSS':<22}" + "".join(f"{r['peak_rss_mb']:>{width - 3}.0f} MB" for _, r in columns)
    )
    print(f"{'load after':<22}" + "".join(f"{r['load']:>{width}.2f}" for _, r in columns))
    for name, r in columns:
        print(
            f"{name}: wall {r['wall']:.0f} s = {r['wall'] / BUDGET_S:.2f} x the 10-minute budget, "
            f"{r['wall'] / TARGET_S:.2f} x the 3-minute target; peak RSS {r['peak_rss_mb']:.0f} MB; "
            f"win-rate {r['first_win_rate']:.3f} after round 1, {r['win_rate']:.3f} ± "
            f"{r['win_rate_stderr']:.3f} at the end"
        )


if __name__ == "__main__":
    main()
