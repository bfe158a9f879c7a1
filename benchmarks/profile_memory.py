"""Where `apl run`'s time and resident memory go: the real CLI in this process, phase by phase.

Runs `apl run ARGS` (apl's own typer command, in this process) with hooks that name the phase
being run: start-up (imports, model, reference copy, prompt pools, the judge's load or fit)
and the loop's phases from its PhaseTimer (generate, score, label, train, evaluate; "loop" is
the rest of a round, "finish" what follows the last round). A thread samples the RSS every
10 ms; for each phase it keeps the highest sample and whether the process's high-water mark
(`ru_maxrss`, exact) rose during it, so the phase that sets the run's peak is named exactly.

    python benchmarks/profile_memory.py [--json FILE] [apl run arguments ...]

`bench_run.py` runs this script as its child; alone it prints the table. Hooks that the apl
on PYTHONPATH lacks (an older revision) are skipped, so the same probe measures any revision.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from contextlib import contextmanager

_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATE: dict = {"phase": "start-up", "peaks": {}, "seconds": {}, "raised": set()}
_STATE["since"] = time.perf_counter()


def rss_mb() -> float:
    """Resident set size now, from /proc (no psutil: the probe must import nothing heavy)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def high_water_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _sample() -> None:
    while True:
        phase = _STATE["phase"]
        _STATE["peaks"][phase] = max(_STATE["peaks"].get(phase, 0.0), rss_mb())
        time.sleep(0.01)


def _enter(phase: str) -> str:
    """Switch the current phase; returns the one left."""
    now, previous = time.perf_counter(), _STATE["phase"]
    _STATE["seconds"][previous] = _STATE["seconds"].get(previous, 0.0) + now - _STATE["since"]
    _STATE["peaks"][previous] = max(_STATE["peaks"].get(previous, 0.0), rss_mb())
    mark = high_water_mb()
    if mark > _STATE.get("mark", 0.0):
        _STATE["raised"].add(previous)
        _STATE["mark"] = mark
    _STATE["phase"], _STATE["since"] = phase, now
    return previous


def _install_hooks() -> None:
    """Phase names from the loop's PhaseTimer; start-up ends when the first round starts."""
    try:
        from apl.loop import runner
    except ImportError:
        return
    timer = getattr(runner, "PhaseTimer", None)
    if timer is None:
        return
    timed = timer.time

    @contextmanager
    def phase(self, name: str):
        previous = _enter(name)
        try:
            with timed(self, name):
                yield
        finally:
            _enter(previous if previous != "start-up" else "loop")

    timer.time = phase
    run_all = runner.ActiveLoop.run if hasattr(runner, "ActiveLoop") else None
    if run_all is not None:

        def whole(self, *args, **kwargs):
            _enter("loop")
            try:
                return run_all(self, *args, **kwargs)
            finally:
                _enter("finish")

        runner.ActiveLoop.run = whole


def main() -> None:
    """Run the CLI with the sampler on; print (or write as JSON) the per-phase figures."""
    args = sys.argv[1:]
    out = None
    if args[:1] == ["--json"]:
        out, args = args[1], args[2:]
    threading.Thread(target=_sample, daemon=True).start()
    _install_hooks()
    from apl.cli import main as cli

    sys.argv = ["apl", "run", *args]
    code = 0
    try:
        cli()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    _enter("done")
    phases = [p for p in _STATE["seconds"] if p != "done"]
    result = {
        "exit": code,
        "peak_rss_mb": high_water_mb(),
        "phases": {
            p: {
                "seconds": _STATE["seconds"][p],
                "peak_rss_mb": _STATE["peaks"].get(p, 0.0),
                "sets_peak": p in _STATE["raised"],
            }
            for p in phases
        },
    }
    if out:
        with open(out, "w") as f:
            json.dump(result, f)
    else:
        print(f"\n{'phase':<12}{'seconds':>9}{'peak RSS MB':>13}  raised the high-water mark")
        for p, row in result["phases"].items():
            print(
                f"{p:<12}{row['seconds']:>9.1f}{row['peak_rss_mb']:>13.0f}  "
                f"{'yes' if row['sets_peak'] else ''}"
            )
        print(f"process peak (ru_maxrss): {result['peak_rss_mb']:.0f} MB")
    sys.exit(code)


if __name__ == "__main__":
    main()
