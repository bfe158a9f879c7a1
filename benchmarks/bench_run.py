"""A default `apl run`: wall time, phase times, final win-rate and peak memory, per revision.

Runs the real command (apl's CLI, `apl run` with no arguments but an output dir) in a child
process through `profile_memory.py`, which names each phase and samples its resident memory.
Each run gets a fresh, empty APL_CACHE_DIR (no cached verdicts: the judge labels every pair)
holding only the fitted offline judge (the `imdb-*.pkl` models, fitted once into
`--judge-cache` before any timed run): the run a user makes after their first. torch.compile's
kernel cache is the machine's own (a second run) unless --fresh-inductor-cache.

With `--revs`, the same run is also made with apl's `src/` as it was at each git revision
(extracted to a scratch directory, first on the child's PYTHONPATH), interleaved with this
working tree's, so a before/after comparison shares the machine's load. Prints per run: wall
time against the 10-minute budget (issue 5) and the 3-minute target (issue 16), phase times
(the ledger's `time/*`: generate, score, label, train, evaluate; start-up and finish from the
probe), the final win-rate +- its standard error, peak RSS (the child's `ru_maxrss`) and each
phase's peak RSS; then each revision's final win-rate against this tree's, in standard errors.

    python benchmarks/bench_run.py [--repeats 1] [--threads N] [--revs REV ...] [overrides ...]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "profile_memory.py"
BUDGET_S = 600.0  # issue 5: at most 10 minutes on 2 cores
TARGET_S = 180.0  # issue 16: under 3 minutes on 2 cores
RSS_TARGET_MB = 1200.0  # issue 10: the default run under 1.2 GB
PHASES = ("generate", "score", "label", "train", "evaluate")
_FIT_JUDGE = (
    "import sys; from apl.oracles.sentiment_model import load_sentiment_model as s; s(sys.argv[1])\n"
    "try:\n from apl.oracles.fluency_model import load_fluency_model as f; f(sys.argv[1])\n"
    "except ImportError: pass"
)


def source_at(rev: str, into: Path) -> Path:
    """apl's `src/` as it was at git revision `rev`, extracted under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into / rev, filter="data")
    return into / rev / "src"


def child_env(src: Path, cache: Path, threads: int | None, inductor: Path | None) -> dict:
    env = dict(os.environ, APL_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH", "")]))
    if inductor is not None:  # torch.compile's kernels built from scratch, as on a new machine
        env["TORCHINDUCTOR_CACHE_DIR"] = str(inductor)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def fit_judge(src: Path, judge_cache: Path) -> None:
    """Fit the offline judge's models into `judge_cache` (a no-op when they are there)."""
    env = child_env(src, judge_cache, None, None)
    subprocess.run([sys.executable, "-c", _FIT_JUDGE, str(judge_cache)], env=env, check=True)


def run_once(
    overrides: list[str], threads: int | None, src: Path, judge_cache: Path, fresh_inductor: bool
) -> dict:
    """One `apl run` of the apl in `src` in a fresh cache dir holding only the fitted judge."""
    from apl.store.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        for fitted in judge_cache.glob("imdb-*.pkl"):
            shutil.copy2(fitted, cache / fitted.name)
        inductor = Path(tmp) / "inductor" if fresh_inductor else None
        env = child_env(src, cache, threads, inductor)
        out, probe, log = Path(tmp) / "run", Path(tmp) / "probe.json", Path(tmp) / "stderr.log"
        start = time.perf_counter()
        with open(log, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(PROBE), "--json", str(probe), f"output_dir={out}", *overrides],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"apl run failed ({status}):\n{log.read_text()[-3000:]}")
        with Ledger(out / "ledger.sqlite") as ledger:
            metrics = ledger.metrics()
        phases = json.loads(probe.read_text())["phases"]
    last = metrics[max(metrics)]
    row = {"wall": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "phase_rss": {}}  # kB on Linux
    for phase in PHASES:
        row[phase] = last.get(f"time/{phase}") or 0.0  # cumulative over the run
    row["start-up"] = phases.get("start-up", {}).get("seconds", 0.0)
    row["rest"] = wall - row["start-up"] - sum(row[p] for p in PHASES)
    for name, seen in phases.items():
        row["phase_rss"][name] = (seen["peak_rss_mb"], seen["sets_peak"])
    evaluated = [r for r in sorted(metrics) if "eval/win_rate" in metrics[r]]
    row["win_rates"] = [metrics[r]["eval/win_rate"] for r in evaluated]
    row["win_rate"], row["stderr"] = last["eval/win_rate"], last["eval/win_rate_stderr"]
    row["load"] = os.getloadavg()[0]
    return row


def print_table(columns: list[tuple[str, dict]]) -> None:
    width = max(14, *(len(name) + 2 for name, _ in columns))
    print(f"{'':<22}" + "".join(f"{name:>{width}}" for name, _ in columns))
    for key in ("start-up", *PHASES, "rest", "wall"):
        print(f"{key:<22}" + "".join(f"{r[key]:>{width - 1}.1f}s" for _, r in columns))
    print(
        f"{'peak RSS':<22}" + "".join(f"{r['peak_rss_mb']:>{width - 3}.0f} MB" for _, r in columns)
    )
    names = list(dict.fromkeys(p for _, r in columns for p in r["phase_rss"]))
    for phase in names:
        cells = []
        for _, r in columns:
            peak, sets = r["phase_rss"].get(phase, (math.nan, False))
            cells.append(f"{peak:>{width - 5}.0f} MB{'*' if sets else ' '}")
        print(f"{'  peak in ' + phase:<22}" + "".join(cells))
    print(f"{'load after':<22}" + "".join(f"{r['load']:>{width}.2f}" for _, r in columns))
    print("(* the phase raised the process's high-water mark; the last * holds the peak)")


def main() -> None:
    """Run every source in turn, `--repeats` times, and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="Default: torch's own choice.")
    parser.add_argument("--revs", nargs="*", default=[], help="git revisions to run as well")
    parser.add_argument(
        "--judge-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "apl-bench-judge",
        help="Where the fitted offline judge is kept between benchmark runs",
    )
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
        for src in sources.values():  # untimed: the judge is warm in every timed run
            fit_judge(src, args.judge_cache)
        columns = []
        for repeat in range(args.repeats):
            for name, src in sources.items():
                row = run_once(
                    args.overrides, args.threads, src, args.judge_cache, args.fresh_inductor_cache
                )
                columns.append((f"{name} #{repeat + 1}", row))
                print(f"{name} #{repeat + 1}: wall {row['wall']:.0f} s", flush=True)
    print(
        f"\napl run {' '.join(args.overrides)} on {os.cpu_count()} cores, threads "
        f"{args.threads or 'torch default'}, "
        f"{'an empty' if args.fresh_inductor_cache else 'the shared'} inductor cache, "
        f"fitted judge warm, no cached verdicts (load average before: {load:.2f})"
    )
    print_table(columns)
    for name, r in columns:
        curve = " ".join(f"{w:.3f}" for w in r["win_rates"])
        print(
            f"{name}: wall {r['wall']:.0f} s = {r['wall'] / BUDGET_S:.2f} x the 10-minute "
            f"budget, {r['wall'] / TARGET_S:.2f} x the 3-minute target; peak RSS "
            f"{r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb'] / RSS_TARGET_MB:.2f} x 1.2 GB); "
            f"final win-rate {r['win_rate']:.3f} +- {r['stderr']:.3f} (per evaluation: {curve})"
        )
    ours = [r for name, r in columns if name.startswith("this tree")]
    for name, r in columns:
        if name.startswith("this tree"):
            continue
        mine = ours[min(int(name.rsplit("#", 1)[1]) - 1, len(ours) - 1)]
        se = math.hypot(r["stderr"], mine["stderr"])
        gap = mine["win_rate"] - r["win_rate"]
        print(
            f"this tree vs {name}: final win-rate {gap:+.3f} ({gap / se:+.1f} SE of the "
            f"difference), wall {mine['wall'] / r['wall']:.2f}x, peak RSS "
            f"{mine['peak_rss_mb'] / r['peak_rss_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
