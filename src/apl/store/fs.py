"""Crash-safe file helpers for the run store: atomic writes, fsync, one-line storage errors."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from apl.errors import RunStoreError

F = TypeVar("F", bound=Callable[..., Any])

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _oserror_reason(err: OSError) -> str | None:
    if err.errno in _FULL:
        return "the disk is full; free some space or move output_dir to another disk, then resume"
    if err.errno in _DENIED:
        return "permission denied; make it writable or choose another output_dir"
    if err.errno == errno.ENOTDIR:
        return "a parent path is a file, not a directory; choose another output_dir"
    return None


def _sqlite_reason(err: sqlite3.Error) -> str | None:
    name = getattr(err, "sqlite_errorname", "") or ""
    text = str(err).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return "the disk is full; free some space or move output_dir to another disk, then resume"
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN")) or "readonly" in text:
        return "permission denied; make it writable or choose another output_dir"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "another process holds it; wait for that run to finish or use another output_dir"
    if (
        name in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
        or "not a database" in text
        or "malformed" in text
    ):
        return "it is not a valid apl ledger (corrupt or foreign file); move it away"
    if name.startswith("SQLITE_IOERR"):
        return "an I/O error occurred (full or failing disk?); check the disk, then resume"
    return None


@contextlib.contextmanager
def storage_errors(action: str, path: str | Path) -> Iterator[None]:
    """Turn disk-full, permission and lock errors into a one-line RunStoreError.

    Anything else (a bug, a constraint violation) propagates unchanged.
    """
    try:
        yield
    except OSError as err:
        reason = _oserror_reason(err)
        if reason is None:
            raise
        raise RunStoreError(f"Cannot {action} {path}: {reason}.") from err
    except sqlite3.Error as err:
        if isinstance(
            err, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
        ):
            raise  # a bug in the caller, not the disk
        reason = _sqlite_reason(err)
        if reason is None:
            raise
        raise RunStoreError(f"Cannot {action} {path}: {reason}.") from err


def guarded(action: str) -> Callable[[F], F]:
    """Method decorator: run under `storage_errors(action, self.path)`."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with storage_errors(action, self.path):
                return func(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory under `root` (after save_pretrained, before the rename)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(dirpath)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` so a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with storage_errors("write", path):
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)


def replace_dir_atomic(dest: str | Path, fill: Callable[[Path], None], action: str) -> Path:
    """Build a directory with `fill(tmp)` beside `dest`, fsync it, then rename it into place.

    A crash leaves either the old `dest` (or none) or the complete new one; the hidden
    `.name.tmp-PID` / `.name.old-PID` leftovers of a killed writer are removed by the next call.
    """
    dest = Path(dest)
    parent = dest.parent
    tmp = parent / f".{dest.name}.tmp-{os.getpid()}"
    old = parent / f".{dest.name}.old-{os.getpid()}"
    with storage_errors(action, dest):
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(parent, dest.name)
        try:
            tmp.mkdir()
            fill(tmp)
            fsync_tree(tmp)
            if dest.exists():  # os.replace cannot overwrite a non-empty directory
                os.replace(dest, old)
            os.replace(tmp, dest)
            fsync_dir(parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return dest


def remove_leftovers(parent: Path, name: str) -> None:
    """Delete the hidden temp/old copies of `name` that a killed writer left in `parent`."""
    for entry in parent.glob(f".{name}.*-*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


# Room needed before buying a label: a verdict row plus SQLite's journal is a few kB, so this
# is a wide margin. Checked *before* a judge call, because once paid, a verdict that cannot be
# written anywhere would be lost.
MIN_FREE_BYTES = 32 * 1024 * 1024


def ensure_free_space(*paths: str | Path, min_bytes: int = MIN_FREE_BYTES) -> None:
    """Raise RunStoreError if the disk holding any of `paths` has less than `min_bytes` free."""
    for path in paths:
        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if free < min_bytes:
            raise RunStoreError(
                f"Only {free // 2**20} MB free on the disk holding {path}; nothing more is bought "
                f"until at least {min_bytes // 2**20} MB are free. Free some space, then "
                "`apl resume` (every label bought so far is stored)."
            )
