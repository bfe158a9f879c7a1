"""The run directory: resolved `config.yaml`, the ledger, and atomic model checkpoints.

Layout of RUN_DIR:
    config.yaml            the resolved config (every default spelled out), written first
    ledger.sqlite          candidates, verdicts, metrics, evaluations (see ledger.py)
    checkpoints/round-XX/  model + tokenizer after round XX (save_pretrained), latest N kept
    final_model/           the final model + tokenizer in Hugging Face format
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from apl.config import APLConfig, config_from_dict, dump_config
from apl.errors import RunStoreError
from apl.store.fs import replace_dir_atomic, storage_errors, write_text_atomic
from apl.store.ledger import Ledger, RunStatus
from apl.store.spend_journal import CallJournal, sweep_spend_file

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LEDGER_FILE = "ledger.sqlite"
CHECKPOINTS_DIR = "checkpoints"
FINAL_MODEL_DIR = "final_model"
LOCK_FILE = ".lock"
_CHECKPOINT_RE = re.compile(r"^round-(\d+)$")
# Not compared between a stored and a new config: where the run lives. The same directory
# can be named by different strings (relative vs absolute, moved), and by the time the
# configs are compared we are already inside that directory.
_LOCATION_KEYS = ("output_dir",)


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _first_difference(stored: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key (in config order) where two resolved config dicts differ."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in list(new) + [k for k in stored if k not in new]:
            dotted = f"{prefix}{key}"
            if dotted in _LOCATION_KEYS:
                continue
            if key not in stored or key not in new:
                return dotted, stored.get(key, _ABSENT), new.get(key, _ABSENT)
            found = _first_difference(stored[key], new[key], f"{dotted}.")
            if found:
                return found
        return None
    return None if stored == new else (prefix.rstrip("."), stored, new)


def _read_stored_config(path: Path) -> dict[str, Any]:
    config_file = path / CONFIG_FILE
    with storage_errors("read", config_file):
        text = config_file.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise RunStoreError(
            f"{config_file} is not a valid apl config; restore it or use a new output_dir."
        )
    return data


@dataclass
class RunDir:
    """An opened run directory and the config it belongs to."""

    path: Path
    config: APLConfig
    created: bool  # True if this call made the directory's config.yaml

    @property
    def ledger_path(self) -> Path:
        """RUN_DIR/ledger.sqlite."""
        return self.path / LEDGER_FILE

    @property
    def checkpoints_dir(self) -> Path:
        """RUN_DIR/checkpoints."""
        return self.path / CHECKPOINTS_DIR

    @property
    def baselines_dir(self) -> Path:
        """Where baseline completions are cached for every run beside this one (a sweep)."""
        return self.path.resolve().parent / "baselines"

    def open_ledger(self) -> Ledger:
        """Open (creating on first use) the run's ledger."""
        return Ledger(self.ledger_path)

    def status(self) -> RunStatus:
        """Progress summary for `apl status`: rounds of config.loop.num_rounds, spend and limits."""
        with self.open_ledger() as ledger:
            status = ledger.status(self.config.loop.num_rounds)
        oracle = self.config.oracle.kwargs
        status = replace(
            status, budget_usd=oracle.get("budget_usd"), max_calls=oracle.get("max_calls")
        )
        sweep_file = sweep_spend_file(self.ledger_path)
        if sweep_file is not None and sweep_file.is_file():
            with CallJournal.for_sweep(sweep_file) as sweep:
                status = replace(status, sweep=sweep.totals())
        return status

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold RUN_DIR/.lock while working, so two processes never buy labels for one run.

        An flock: the kernel drops it when the holder dies, even by kill -9.
        """
        lock_path = self.path / LOCK_FILE
        with storage_errors("lock", lock_path):
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until exit
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RunStoreError(
                    f"Run directory {self.path} is in use by another apl process (pid {holder}); "
                    "wait for it to finish or stop it, then resume."
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()

    def checkpoint_path(self, round: int) -> Path:
        """RUN_DIR/checkpoints/round-XX."""
        return self.checkpoints_dir / f"round-{round:02d}"

    def checkpoints(self) -> dict[int, Path]:
        """Complete checkpoints by round, ascending (half-written ones are never listed)."""
        if not self.checkpoints_dir.is_dir():
            return {}
        found = {}
        for entry in self.checkpoints_dir.iterdir():
            match = _CHECKPOINT_RE.match(entry.name)
            if match and entry.is_dir():
                found[int(match.group(1))] = entry
        return dict(sorted(found.items()))

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        """(round, path) of the newest complete checkpoint, or None."""
        found = self.checkpoints()
        return max(found.items()) if found else None

    def save_checkpoint(self, model: Any, tokenizer: Any, round: int, keep: int = 1) -> Path:
        """Save model (+ tokenizer) atomically as checkpoints/round-XX; keep the newest `keep`."""
        if keep < 1:
            raise ValueError(f"keep ({keep}) must be >= 1")
        dest = replace_dir_atomic(
            self.checkpoint_path(round),
            lambda tmp: _save_pretrained(model, tokenizer, tmp),
            "save a checkpoint to",
        )
        newest = list(self.checkpoints())[-keep:]
        self.prune_checkpoints(before=min(newest))
        return dest

    def prune_checkpoints(self, before: int) -> None:
        """Delete checkpoints of rounds < `before` and a killed writer's hidden leftovers.

        Each is renamed to a hidden name first, so a kill mid-delete never leaves a
        half-deleted `round-XX` that looks complete.
        """
        for entry in self.checkpoints_dir.glob(".round-*"):
            shutil.rmtree(entry, ignore_errors=True)
        for round, path in self.checkpoints().items():
            if round >= before:
                continue
            logger.debug("Removing old checkpoint %s", path)
            hidden = path.with_name(f".{path.name}.old-{os.getpid()}")
            with storage_errors("remove an old checkpoint in", self.checkpoints_dir):
                os.replace(path, hidden)
            shutil.rmtree(hidden, ignore_errors=True)

    def save_final_model(self, model: Any, tokenizer: Any) -> Path:
        """Save the final model + tokenizer atomically to RUN_DIR/final_model."""
        return replace_dir_atomic(
            self.path / FINAL_MODEL_DIR,
            lambda tmp: _save_pretrained(model, tokenizer, tmp),
            "save the model to",
        )


def _save_pretrained(model: Any, tokenizer: Any, directory: Path) -> None:
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)


def check_run_dir(config: APLConfig) -> None:
    """Raise RunStoreError if `open_run_dir(config)` would refuse the directory; writes nothing.

    Refused: a path that is a file (or lies under one), a directory holding a different config
    (naming the first key that differs), a non-empty directory that is not an apl run, or an
    unwritable parent.
    """
    path = Path(config.output_dir)
    if path.exists() and not path.is_dir():
        raise RunStoreError(
            f"output_dir {path} is a file, not a directory; choose a new or empty output_dir."
        )
    if not path.exists():
        parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir():
            raise RunStoreError(
                f"output_dir {path}: {parent} is a file, not a directory; choose another output_dir."
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RunStoreError(
                f"Cannot create the run directory {path}: permission denied on {parent}; make "
                "it writable or choose another output_dir."
            )
        return
    if (path / CONFIG_FILE).exists():
        stored = _read_stored_config(path)
        diff = _first_difference(stored, config.model_dump(mode="json"))
        if diff is not None:
            key, old, new = diff
            raise RunStoreError(
                f"Run directory {path} belongs to a different config: {key} is {old!r} there, "
                f"{new!r} here; use a new output_dir, or `apl resume {path}` to continue "
                "with the stored config."
            )
        return
    ours = (CONFIG_FILE, LEDGER_FILE)
    with storage_errors("read", path):
        names = [e.name for e in path.iterdir()]
    foreign = [name for name in names if not name.startswith(".") and name not in ours]
    if foreign:
        raise RunStoreError(
            f"output_dir {path} is not empty and is not an apl run (no {CONFIG_FILE}; holds "
            f"{sorted(foreign)[0]!r}); choose a new or empty output_dir."
        )


def open_run_dir(config: APLConfig) -> RunDir:
    """Create `config.output_dir` for a new run, or reopen it if it holds this same config.

    Raises RunStoreError where `check_run_dir` does, before anything is created.
    """
    check_run_dir(config)
    path = Path(config.output_dir)
    config_file = path / CONFIG_FILE
    with storage_errors("create the run directory", path):
        path.mkdir(parents=True, exist_ok=True)
    if config_file.exists():
        return RunDir(path, config, created=False)
    write_text_atomic(config_file, dump_config(config))  # first: marks the directory as ours
    logger.info("Created run directory %s", path)
    return RunDir(path, config, created=True)


def load_run_dir(path: str | Path) -> RunDir:
    """Open an existing run directory with its stored config (for `apl resume` / `apl status`).

    The config's `output_dir` is set to `path`, so a moved run directory still works.
    """
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise RunStoreError(
            f"{path} is not an apl run directory (no {CONFIG_FILE}); "
            "pass the output_dir of an `apl run`."
        )
    data = _read_stored_config(path)
    data["output_dir"] = str(path)
    return RunDir(path, config_from_dict(data, source=str(path / CONFIG_FILE)), created=False)
