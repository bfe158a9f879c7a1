"""Fresh judge caches for tests that keep their labels apart but need not fit the judge again."""

from __future__ import annotations

import shutil
from pathlib import Path


def seed_fitted_judge(directory: Path, fitted: Path) -> Path:
    """Copy the fitted judge models (not the label cache) from `fitted` into `directory`, so a
    test that keeps its own labels apart does not fit the judge again (the fits are
    bit-reproducible: tests/oracles/test_imdb_judge.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    for model in fitted.glob("imdb-*.pkl"):
        shutil.copy2(model, directory / model.name)
    return directory
