"""Experiment trackers (TensorBoard, W&B, MLflow, trackio) fed from the run ledger; see TRACKING.md."""

from apl.tracking.backends import (
    STEP_LABELS,
    TRACKERS,
    check_trackers,
    is_installed,
    resolve_report_to,
)
from apl.tracking.run_trackers import RunTrackers, flatten_params

__all__ = [
    "STEP_LABELS",
    "TRACKERS",
    "RunTrackers",
    "check_trackers",
    "flatten_params",
    "is_installed",
    "resolve_report_to",
]
