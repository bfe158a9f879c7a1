"""The label queue's status: the newest batch's progress, a live run's heartbeat, the form key."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from apl.store.fs import guarded
from apl.store.label_schema import QueueConnection
from apl.store.ledger_schema import transaction

_guarded = guarded("use the label queue in")

HEARTBEAT_EVERY_S = 5.0  # how often a live run says so (each write is an fsync)
ALIVE_WITHIN_S = 20.0  # a heartbeat younger than this means a run is live right now


@dataclass(frozen=True)
class QueueProgress:
    """Where the newest batch of queued pairs stands, for the page and `apl status`."""

    round: int | None
    purpose: str | None  # 'label' or 'eval'; None when nothing was ever queued
    queued: int  # pairs in the newest (round, purpose) batch
    answered: int  # of those, pairs holding all the answers they need (or decided)
    open_pairs: int  # pairs anywhere still waiting for an answer
    labels_held: int  # A/B verdicts in the ledger: the labels DPO trains on
    run_live: bool  # a run of this queue is running right now (waiting, training, ...)


class QueueStatus:
    """Status methods of `LabelQueue` (needs `path`, `_db` and `_last_heartbeat`)."""

    path: Path
    _db: QueueConnection
    _last_heartbeat: float

    @_guarded
    def heartbeat(self) -> None:
        """Say that a run of this queue is running now (written at most every few seconds)."""
        now = time.time()
        if now - self._last_heartbeat < HEARTBEAT_EVERY_S:
            return
        self._last_heartbeat = now
        with self._db.lock, transaction(self._db.conn):
            self._db.conn.execute(
                "INSERT OR REPLACE INTO label_settings VALUES ('loop_heartbeat', ?)", (repr(now),)
            )

    @_guarded
    def progress(self) -> QueueProgress:
        """The newest batch's counts, labels held, and whether a run is live."""
        conn = self._db.conn
        with self._db.lock:
            last = conn.execute(
                "SELECT round, purpose FROM label_pairs ORDER BY id DESC LIMIT 1"
            ).fetchone()
            complete = (
                "(verdict IS NOT NULL OR (SELECT COUNT(*) FROM label_answers a "
                "WHERE a.pair_id = label_pairs.id) >= needed)"
            )
            queued = answered = 0
            if last is not None:
                queued, answered = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM({complete}), 0) FROM label_pairs "
                    "WHERE round IS ? AND purpose = ?",
                    (last["round"], last["purpose"]),
                ).fetchone()
            open_pairs = conn.execute(
                f"SELECT COUNT(*) FROM label_pairs WHERE NOT {complete}"
            ).fetchone()[0]
            held = conn.execute(
                "SELECT COUNT(*) FROM verdicts WHERE verdict IN ('A', 'B')"
            ).fetchone()[0]
            beat = conn.execute(
                "SELECT value FROM label_settings WHERE key = 'loop_heartbeat'"
            ).fetchone()
        live = beat is not None and time.time() - float(beat[0]) < ALIVE_WITHIN_S
        return QueueProgress(
            None if last is None else last["round"],
            None if last is None else last["purpose"],
            queued,
            answered,
            open_pairs,
            held,
            live,
        )

    @_guarded
    def secret(self) -> str:
        """This run's random key for signing form tokens (made once, kept in the ledger)."""
        with self._db.lock, transaction(self._db.conn):
            self._db.conn.execute(
                "INSERT OR IGNORE INTO label_settings VALUES ('form_secret', ?)",
                (secrets.token_hex(32),),
            )
            return self._db.conn.execute(
                "SELECT value FROM label_settings WHERE key = 'form_secret'"
            ).fetchone()[0]
