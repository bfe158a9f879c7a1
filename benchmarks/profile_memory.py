"""Where `apl run`'s resident memory goes: RSS sampled every 20 ms, peak per phase.

Runs `apl run` in this process (fresh APL_CACHE_DIR, so the offline judge is fitted) with
hooks that name the phase being run: imports, model load, the frozen reference copy, the
prompt pools, the judge's fit, and the loop's own phases (generate, score, label, train,
evaluate; "loop" is the rest of a round). Prints the RSS when each phase starts and the
peak RSS within each phase. `bench_run.py` gives the whole run's peak from outside.

    python benchmarks/profile_memory.py [overrides ...]      # e.g. loop.label_budget=128
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

_PROC = psutil.Process()
_STATE: dict = {"phase": "import torch", "peaks": {}, "t0": time.perf_counter()}


def _rss_mb() -> float:
    return _PROC.memory_info().rss / 2**20


def _sample() -> None:
    while True:
        phase = _STATE["phase"]
        _STATE["peaks"][phase] = max(_STATE["peaks"].get(phase, 0.0), _rss_mb())
        time.sleep(0.02)


def _enter(phase: str) -> str:
    previous = _STATE["phase"]
    elapsed = time.perf_counter() - _STATE["t0"]
    print(f"{elapsed:7.1f} s  RSS {_rss_mb():6.0f} MB  -> {phase}", flush=True)
    _STATE["phase"] = phase
    return previous


def _hook(owner, name: str, phase: str) -> None:
    """Wrap `owner.name` so calls to it count as `phase`."""
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        previous = _enter(phase)
        try:
            return original(*args, **kwargs)
        finally:
            _enter(previous)

    setattr(owner, name, wrapped)


def main() -> None:
    """Run with the hooks on, then print the peaks."""
    threading.Thread(target=_sample, daemon=True).start()
    scratch = Path(tempfile.mkdtemp(prefix="apl-profile-"))
    os.environ["APL_CACHE_DIR"] = str(scratch / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch  # noqa: F401

    _enter("import apl")
    import apl.loop.components as components
    import apl.loop.runner as runner
    import apl.oracles.sentiment_model as sentiment
    from apl.config import load_config
    from apl.data import TASKS
    from apl.policy.reference import ReferenceModel

    _hook(components, "load_model", "load model")
    from_policy = ReferenceModel.from_policy.__func__
    ReferenceModel.from_policy = classmethod(
        lambda cls, *a, **k: _timed("reference copy", from_policy, cls, *a, **k)
    )
    for task in TASKS.names():
        _hook(TASKS.get(task), "load_prompts", "prompt pools")
    _hook(sentiment, "fit_sentiment_model", "judge fit")
    timer_time = runner.PhaseTimer.time

    @contextmanager
    def phase(self, name: str):
        previous = _enter(name)
        with timer_time(self, name):
            yield
        _enter(previous)

    runner.PhaseTimer.time = phase
    config = load_config(None, [f"output_dir={scratch / 'run'}", *sys.argv[1:]])
    _enter("loop")
    runner.run(config)
    _enter("done")
    print("\npeak RSS per phase (MB):")
    for name, peak in _STATE["peaks"].items():
        print(f"  {name:<16}{peak:8.0f}")
    print(
        f"process peak (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def _timed(phase: str, fn, *args, **kwargs):
    previous = _enter(phase)
    try:
        return fn(*args, **kwargs)
    finally:
        _enter(previous)


if __name__ == "__main__":
    main()
