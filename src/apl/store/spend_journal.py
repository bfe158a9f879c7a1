"""The write-ahead journal of paid judge calls: `oracle_calls` in a run's ledger or a sweep's file.

Before a request leaves, its worst-case cost is committed as an `in_flight` row; when it ends
the row is `settled` (an answer, stored before this) or `failed` with what it cost. A row
left `in_flight` by a process that died counts at its worst case forever, so a limit checked
against these totals holds across SIGKILL. The check and the insert are one `BEGIN IMMEDIATE`
transaction, so processes sharing a file (a sweep's runs) never both take the last room. The
decision itself is the caller's (`decide`), so this module holds only SQL.

A sweep's spend file (`SWEEP_SPEND_FILE` at the sweep root) holds the same table plus the
sweep's limits in `meta`; a run's ledger names it in `meta.sweep_spend` (see `link_run`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apl.errors import RunStoreError
from apl.store.fs import storage_errors
from apl.store.journal_schema import BLOCKED, CALL_TOTALS, create_journal
from apl.store.ledger_schema import BUSY_TIMEOUT_MS, connect, transaction

SWEEP_SPEND_FILE = "sweep_spend.sqlite"
SWEEP_SPEND_KEY = "sweep_spend"  # ledger meta: the sweep spend file, relative to the run dir
_LIMIT_KEYS = ("budget_usd", "max_calls")


@dataclass(frozen=True)
class JournalTotals:
    """What a journal file has counted, and the limits stored in it (a sweep's; else None)."""

    spent_usd: float  # settled and failed calls at cost, in-flight ones at worst case
    calls: int  # requests, retries included
    in_flight: int  # rows not settled: live calls, or calls lost when a process died
    blocked_usd: float  # a refused worst case that must fit before any other call
    budget_usd: float | None = None
    max_calls: int | None = None


class CallJournal:
    """One file's `oracle_calls`, on its own connection; safe across threads and processes."""

    def __init__(self, path: Path, conn: sqlite3.Connection, run: str | None = None) -> None:
        self.path, self._conn, self.run = path, conn, run
        self._lock = threading.Lock()

    @classmethod
    def for_ledger(cls, path: str | Path) -> CallJournal:
        """The journal inside a run's ledger (migrated forward if it is older)."""
        path = Path(path)
        with storage_errors("open the ledger", path):
            conn = connect(path, check_same_thread=False)
        return cls(path, conn)

    @classmethod
    def for_sweep(cls, path: str | Path, run: str | None = None) -> CallJournal:
        """A sweep's spend file, created on first use; rows are tagged with `run`."""
        path = Path(path)
        with storage_errors("open the sweep spend file", path):
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # rows stand for money: survive power cuts
            with transaction(conn):
                if not conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'oracle_calls'"
                ).fetchone():
                    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
                    create_journal(conn)
        return cls(path, conn, run)

    def close(self) -> None:
        """Close the connection (every row is already committed)."""
        with self._lock:
            self._conn.close()

    def _guarded(self, action: str):
        return storage_errors(action, self.path)

    def _totals(self) -> JournalTotals:
        spent, calls, in_flight = self._conn.execute(CALL_TOTALS).fetchone()
        blocked = self._conn.execute(BLOCKED).fetchone()[0]
        limits = dict(
            self._conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('budget_usd', 'max_calls')"
            ).fetchall()
        )
        budget = limits.get("budget_usd")
        max_calls = limits.get("max_calls")
        return JournalTotals(
            float(spent),
            int(calls),
            int(in_flight),
            float(blocked),
            None if budget is None else float(budget),
            None if max_calls is None else int(max_calls),
        )

    def totals(self) -> JournalTotals:
        """Everything counted so far."""
        with self._lock, self._guarded("read the call journal in"):
            return self._totals()

    def reserve(
        self, judge_id: str, key: str, worst_usd: float, decide: Callable[[JournalTotals], Any]
    ) -> int | Any:
        """Commit an `in_flight` row and return its id, unless `decide(totals)` refuses.

        A refusal (whatever `decide` returned, not None) is recorded as a `refused` row, so
        later calls must fit the refused worst case first, and returned.
        """
        with self._lock, self._guarded("write the call journal in"), transaction(self._conn):
            refusal = decide(self._totals())
            state = "in_flight" if refusal is None else "refused"
            cursor = self._conn.execute(
                "INSERT INTO oracle_calls (judge_id, request_key, run, state, worst_usd, pid, "
                "started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (judge_id, key, self.run, state, float(worst_usd), os.getpid(), time.time()),
            )
            return cursor.lastrowid if refusal is None else refusal

    def settle(self, token: int, actual_usd: float, failed: bool) -> None:
        """Replace the row's worst case with what the call cost."""
        with self._lock, self._guarded("write the call journal in"), transaction(self._conn):
            self._conn.execute(
                "UPDATE oracle_calls SET state = ?, actual_usd = ?, settled_at = ? "
                "WHERE id = ? AND state = 'in_flight'",
                ("failed" if failed else "settled", float(actual_usd), time.time(), token),
            )

    def cancel(self, token: int) -> None:
        """Drop a reservation whose request was never sent (another journal refused it)."""
        with self._lock, self._guarded("write the call journal in"), transaction(self._conn):
            self._conn.execute(
                "DELETE FROM oracle_calls WHERE id = ? AND state = 'in_flight'", (token,)
            )

    def set_limits(self, budget_usd: float | None, max_calls: int | None) -> None:
        """Store a sweep's limits (None: no limit); every run reads them at each reservation."""
        values = {"budget_usd": budget_usd, "max_calls": max_calls}
        with self._lock, self._guarded("write"), transaction(self._conn):
            for name in _LIMIT_KEYS:
                value = values[name]
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    (name, None if value is None else repr(value)),
                )

    def add_earlier_spend(self, run: str, totals: JournalTotals) -> bool:
        """Count what `run` spent before it joined this sweep file, once; False if done already."""
        with self._lock, self._guarded("write"), transaction(self._conn):
            if self._conn.execute(
                "SELECT 1 FROM oracle_calls WHERE run = ? AND request_key = 'before-sweep'", (run,)
            ).fetchone():
                return False
            self._conn.execute(
                "INSERT INTO oracle_calls (judge_id, request_key, run, state, worst_usd, "
                "actual_usd, calls, pid, started_at, settled_at) "
                "VALUES ('', 'before-sweep', ?, 'settled', ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    totals.spent_usd,
                    totals.spent_usd,
                    totals.calls,
                    os.getpid(),
                    time.time(),
                    time.time(),
                ),
            )
            return True

    def __enter__(self) -> CallJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_spend_file(ledger_path: Path) -> Path | None:
    """The sweep spend file a run's ledger names, or None for a run outside a sweep limit."""
    with storage_errors("read the ledger", ledger_path):
        conn = connect(ledger_path)
        try:
            row = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (SWEEP_SPEND_KEY,)
            ).fetchone()
        finally:
            conn.close()
    if row is None:
        return None
    path = Path(row[0])
    return path if path.is_absolute() else ledger_path.parent / path


def link_run(ledger_path: Path, sweep_file: Path, run: str) -> None:
    """Make a run count against a sweep's spend file, its past spend included (idempotent).

    The ledger records the file relative to the run dir, so `apl resume RUN` alone still
    counts against the sweep, and a sweep moved as a whole keeps working.
    """
    with CallJournal.for_ledger(ledger_path) as ledger:
        earlier = ledger.totals()
        with ledger._lock, storage_errors("write", ledger_path), transaction(ledger._conn):
            ledger._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (SWEEP_SPEND_KEY, os.path.relpath(sweep_file, ledger_path.parent)),
            )
    with CallJournal.for_sweep(sweep_file) as sweep:
        sweep.add_earlier_spend(run, earlier)


def missing_sweep_file(ledger_path: Path, sweep_file: Path) -> RunStoreError:
    """The error for a run whose sweep spend file is gone: its limit can no longer be checked."""
    return RunStoreError(
        f"Run {ledger_path.parent} counts against the sweep spend file {sweep_file}, which is "
        "missing; restore it, or run the sweep's `apl sweep SPEC` again to recreate it."
    )
