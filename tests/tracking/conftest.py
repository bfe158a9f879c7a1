"""Tracker fixtures: every tracker offline, writing under tmp_path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# trackio reads TRACKIO_DIR once, when first imported: set it before any test imports trackio,
# so no test writes into ~/.cache/huggingface. Each test uses its own trackio project.
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="apl-test-trackio-")


@pytest.fixture()
def offline_trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B offline, MLflow at apl's default (a file store in the run dir)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # apl sets it for its default file store; registered here so the test restores it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return tmp_path
