"""Sweeps: a grid of run configs run as separate, resumable `apl run` subprocesses."""

from apl.sweep.runner import (
    PlannedRun,
    RunOutcome,
    SweepResult,
    is_complete,
    plan_sweep,
    run_state,
    run_sweep,
)
from apl.sweep.spec import SweepRun, SweepSpec, build_sweep, load_sweep_spec, run_name

__all__ = [
    "PlannedRun",
    "RunOutcome",
    "SweepResult",
    "SweepRun",
    "SweepSpec",
    "build_sweep",
    "is_complete",
    "load_sweep_spec",
    "plan_sweep",
    "run_name",
    "run_state",
    "run_sweep",
]
