"""The label queue: pairs waiting for people, their answers, undo and decisions, in the ledger.

Every answer is committed in its own transaction the moment it is given, so a closed tab, a
killed server or a killed run loses nothing. A pair is offered to an annotator only while it
is undecided, holds fewer than `needed` answers and has none from that annotator, so it is
never shown to a person again once answered. Deciding a pair (the loop turning its answers
into a verdict) is conditional on the answers it saw, so it can never race an undo.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from apl.store.fs import guarded
from apl.store.label_import import ImportRecords
from apl.store.label_people import AnnotatorRecords
from apl.store.label_schema import (
    Answer,
    PairState,
    QueueConnection,
    QueueRejection,
    to_request_choice,
)
from apl.store.label_status import QueueStatus
from apl.store.ledger_schema import transaction
from apl.types import QueueItem

_guarded = guarded("use the label queue in")

CLAIM_S = 300.0  # a pair someone else opened this recently is offered to others last


def _state(row, answers: Sequence[Answer]) -> PairState:
    return PairState(
        row["id"],
        row["key"],
        row["round"],
        row["purpose"],
        row["prompt"],
        row["completion_a"],
        row["completion_b"],
        row["shown_order"],
        row["needed"],
        row["verdict"],
        tuple(answers),
    )


class LabelQueue(AnnotatorRecords, ImportRecords, QueueStatus):
    """The queue of one run, stored in its ledger (`RUN_DIR/ledger.sqlite`)."""

    def __init__(self, path: str | Path) -> None:
        self._db = QueueConnection(path)
        self.path = self._db.path
        self._last_heartbeat = 0.0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> LabelQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop's side ---------------------------------------------------------------------

    @_guarded
    def open_pairs(self, items: Sequence[QueueItem]) -> list[int]:
        """Queue pairs (a key already queued is kept as it is) in one transaction; their ids."""
        conn, now = self._db.conn, time.time()
        with self._db.lock, transaction(conn):
            for it in items:
                conn.execute(
                    "INSERT OR IGNORE INTO label_pairs (key, round, purpose, prompt, completion_a, "
                    "completion_b, shown_order, needed, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        it.key,
                        it.round,
                        it.purpose,
                        it.prompt,
                        it.completion_a,
                        it.completion_b,
                        it.shown_order,
                        it.needed,
                        now,
                    ),
                )
            return [
                conn.execute("SELECT id FROM label_pairs WHERE key = ?", (it.key,)).fetchone()[0]
                for it in items
            ]

    @_guarded
    def states(self, ids: Sequence[int]) -> dict[int, PairState]:
        """The pairs with these ids and their answers (oldest answer first)."""
        out = {}
        with self._db.lock:
            for pair_id in ids:
                row = self._db.conn.execute(
                    "SELECT * FROM label_pairs WHERE id = ?", (pair_id,)
                ).fetchone()
                if row is not None:
                    out[pair_id] = _state(row, self._answers(pair_id))
        return out

    def _answers(self, pair_id: int) -> list[Answer]:
        rows = self._db.conn.execute(
            "SELECT n.name, a.choice, a.seconds, a.answered_at, a.source FROM label_answers a "
            "JOIN label_annotators n ON n.id = a.annotator_id WHERE a.pair_id = ? "
            "ORDER BY a.answered_at, n.name",
            (pair_id,),
        )
        return [Answer(*row) for row in rows]

    @_guarded
    def waiting(self) -> list[PairState]:
        """Undecided pairs still short of answers, oldest first (what an export hands out)."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT * FROM label_pairs p WHERE verdict IS NULL AND needed > "
                "(SELECT COUNT(*) FROM label_answers a WHERE a.pair_id = p.id) ORDER BY id"
            ).fetchall()
            return [_state(row, self._answers(row["id"])) for row in rows]

    @_guarded
    def decide(self, pair_id: int, verdict: str, seen: Sequence[Answer]) -> bool:
        """Record the pair's verdict if its answers are still exactly `seen`; False otherwise."""
        conn = self._db.conn
        with self._db.lock, transaction(conn):
            if set(self._answers(pair_id)) != set(seen):
                return False  # an undo or a new answer came in since; look again next poll
            cur = conn.execute(
                "UPDATE label_pairs SET verdict = ?, decided_at = ? WHERE id = ? AND verdict IS NULL",
                (verdict, time.time(), pair_id),
            )
            return cur.rowcount == 1

    # --- the page's side ---------------------------------------------------------------------

    @_guarded
    def next_pair(self, annotator_id: int) -> PairState | None:
        """The pair to show this annotator: the one they have open, else the oldest unclaimed."""
        since = time.time() - CLAIM_S
        with self._db.lock:
            row = self._db.conn.execute(
                """
                SELECT p.*, (SELECT COUNT(*) FROM label_answers a WHERE a.pair_id = p.id) AS n
                FROM label_pairs p
                WHERE p.verdict IS NULL
                  AND (SELECT COUNT(*) FROM label_answers a WHERE a.pair_id = p.id) < p.needed
                  AND NOT EXISTS (SELECT 1 FROM label_answers a
                                  WHERE a.pair_id = p.id AND a.annotator_id = :me)
                ORDER BY
                  EXISTS (SELECT 1 FROM label_views v WHERE v.pair_id = p.id
                          AND v.annotator_id = :me AND v.shown_at > :since) DESC,
                  n + (SELECT COUNT(*) FROM label_views v WHERE v.pair_id = p.id
                       AND v.annotator_id != :me AND v.shown_at > :since
                       AND NOT EXISTS (SELECT 1 FROM label_answers a WHERE a.pair_id = p.id
                                       AND a.annotator_id = v.annotator_id)) >= p.needed,
                  p.id
                LIMIT 1
                """,
                {"me": annotator_id, "since": since},
            ).fetchone()
            return None if row is None else _state(row, self._answers(row["id"]))

    @_guarded
    def mark_shown(self, pair_id: int, annotator_id: int) -> None:
        """Note when this annotator was shown the pair (time per label; claims it for a while)."""
        with self._db.lock, transaction(self._db.conn):
            self._db.conn.execute(
                "INSERT OR REPLACE INTO label_views VALUES (?, ?, ?)",
                (pair_id, annotator_id, time.time()),
            )

    @_guarded
    def answer(self, pair_id: int, annotator_id: int, shown_choice: str) -> PairState:
        """Commit one answer given on the page ('left', 'right', 'tie' or 'skip').

        Raises QueueRejection (404 unknown pair, 409 answered/decided/full) and changes nothing.
        """
        conn, now = self._db.conn, time.time()
        with self._db.lock, transaction(conn):
            row = conn.execute("SELECT * FROM label_pairs WHERE id = ?", (pair_id,)).fetchone()
            if row is None:
                raise QueueRejection(404, f"Pair {pair_id} is not in this run's queue.")
            answers = self._answers(pair_id)
            mine = conn.execute(
                "SELECT choice FROM label_answers WHERE pair_id = ? AND annotator_id = ?",
                (pair_id, annotator_id),
            ).fetchone()
            if mine is not None:
                raise QueueRejection(409, f"You already answered pair {pair_id}.")
            if row["verdict"] is not None or len(answers) >= row["needed"]:
                raise QueueRejection(409, f"Pair {pair_id} already has all its answers.")
            view = conn.execute(
                "SELECT shown_at FROM label_views WHERE pair_id = ? AND annotator_id = ?",
                (pair_id, annotator_id),
            ).fetchone()
            conn.execute(
                "INSERT INTO label_answers VALUES (?, ?, ?, ?, ?, 'web')",
                (
                    pair_id,
                    annotator_id,
                    to_request_choice(shown_choice, row["shown_order"]),
                    None if view is None else max(0.0, now - view[0]),
                    now,
                ),
            )
            return _state(row, self._answers(pair_id))

    @_guarded
    def undo_last(self, annotator_id: int) -> int:
        """Delete this annotator's newest page answer if its pair is undecided; its pair id."""
        conn = self._db.conn
        with self._db.lock, transaction(conn):
            row = conn.execute(
                "SELECT a.pair_id, p.verdict FROM label_answers a JOIN label_pairs p "
                "ON p.id = a.pair_id WHERE a.annotator_id = ? AND a.source = 'web' "
                "ORDER BY a.answered_at DESC LIMIT 1",
                (annotator_id,),
            ).fetchone()
            if row is None:
                raise QueueRejection(409, "There is no answer of yours to undo.")
            if row["verdict"] is not None:
                raise QueueRejection(
                    409, f"Pair {row['pair_id']} is already decided and used; it cannot be undone."
                )
            conn.execute(
                "DELETE FROM label_answers WHERE pair_id = ? AND annotator_id = ?",
                (row["pair_id"], annotator_id),
            )
            conn.execute(
                "INSERT OR REPLACE INTO label_views VALUES (?, ?, ?)",
                (row["pair_id"], annotator_id, time.time()),
            )
            return row["pair_id"]
