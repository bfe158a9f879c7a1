"""The trackers apl can report to, the extra that installs each, and how each one is started.

Every tracker is accelerate's own (`accelerate.tracking`), started with apl's conventions:
its files under RUN_DIR/trackers unless the tracker's own environment variable says where
(`WANDB_DIR`, `MLFLOW_TRACKING_URI`, `TRACKIO_DIR`), and, on a resumed run, the same run id
as before so the tracker continues one run instead of starting a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apl.errors import ConfigError

logger = logging.getLogger(__name__)

# name -> (module that must import, pyproject extra that installs it)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "trackio": ("trackio", "trackio"),
}
STEP_LABELS = "loop/labels"  # the labelled-set size, logged with every round


def is_installed(name: str) -> bool:
    """True if the tracker's package can be imported (checked without importing it)."""
    return importlib.util.find_spec(TRACKERS[name][0]) is not None


def resolve_report_to(report_to: Sequence[str]) -> list[str]:
    """The trackers to start: `all` means every installed one; repeats are dropped."""
    names: list[str] = []
    for name in report_to:
        wanted = [n for n in TRACKERS if is_installed(n)] if name == "all" else [name]
        names.extend(n for n in wanted if n not in names)
    return names


def check_trackers(report_to: Sequence[str]) -> None:
    """Raise ConfigError naming the extra to install if a requested tracker is missing."""
    for name in report_to:
        if name != "all" and not is_installed(name):
            module, extra = TRACKERS[name]
            raise ConfigError(
                f"tracking.report_to ({name!r}): the {module} package is not installed; "
                f"install it with `pip install 'apl[{extra}]'` or drop {name!r}."
            )


@dataclass(frozen=True)
class TrackerRun:
    """What a tracker is started with."""

    directory: Path  # RUN_DIR/trackers
    project: str
    run_name: str
    run_id: str | None  # the id an earlier process of this run used (wandb, mlflow)
    resend_from: int | None  # first round this process sends on a run that sent before


def start_tracker(
    name: str, run: TrackerRun, params: dict[str, Any], first: bool
) -> tuple[Any, str | None]:
    """Start accelerate's tracker `name`; record `params` (the resolved config) on its `first`
    start for this run (MLflow refuses to change a stored parameter).

    Returns (tracker, the run id to keep for a resume).
    """
    if name == "trackio":
        # Given at every init: a resumed trackio run otherwise shows an empty config, and
        # accelerate's store_init_configuration also stores an `allow_val_change` key.
        return _trackio(run, params), None
    tracker, run_id = _STARTERS[name](run)
    if first:
        tracker.store_init_configuration(params)
    return tracker, run_id


def _tensorboard(run: TrackerRun) -> tuple[Any, str | None]:
    from accelerate.tracking import TensorBoardTracker

    # purge_step: a round sent by a process killed before it could record the send is sent
    # again; TensorBoard then hides the earlier copy (its events at steps >= purge_step).
    tracker = TensorBoardTracker(
        run.run_name, run.directory / "tensorboard", purge_step=run.resend_from
    )
    tracker.start()
    return tracker, None


def _wandb(run: TrackerRun) -> tuple[Any, str | None]:
    from accelerate.tracking import WandBTracker

    run_id = run.run_id or uuid.uuid4().hex[:8]
    options: dict[str, Any] = {"name": run.run_name, "id": run_id, "resume": "allow"}
    if not os.environ.get("WANDB_DIR"):
        run.directory.mkdir(parents=True, exist_ok=True)
        options["dir"] = str(run.directory)
    tracker = WandBTracker(run.project, **options)
    tracker.start()
    # Plot against the labelled-set size by default (the paper's x-axis); `step` stays the round.
    tracker.run.define_metric(STEP_LABELS)
    tracker.run.define_metric("*", step_metric=STEP_LABELS)
    return tracker, run_id


def _mlflow(run: TrackerRun) -> tuple[Any, str | None]:
    import mlflow
    from accelerate.tracking import MLflowTracker

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # mlflow-skinny has no SQL store, and MLflow 3 refuses its file store unless told.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((run.directory / "mlruns").resolve().as_uri())
    tracker = MLflowTracker(run.project, run_id=run.run_id, run_name=run.run_name)
    tracker.start()
    return tracker, tracker.active_run.info.run_id


def _trackio(run: TrackerRun, params: dict[str, Any]) -> Any:
    from accelerate.tracking import TrackioTracker

    tracker = TrackioTracker(run.project, name=run.run_name, resume="allow", config=params)
    tracker.start()
    return tracker


_STARTERS = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}
