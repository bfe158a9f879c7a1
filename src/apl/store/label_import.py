"""Answers from a Label Studio or Argilla export into the label queue: all of them or none.

One transaction: the first problem (a pair not in this run's queue, two different answers from
one person, an answer that contradicts a stored one, a change to an already decided pair)
raises a one-line LabelImportError and rolls back everything. An answer already stored with
the same choice is left as it is, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apl.errors import LabelImportError
from apl.store.fs import guarded
from apl.store.label_schema import SOURCES, QueueConnection, QueueRejection, to_request_choice
from apl.store.ledger_schema import transaction
from apl.types import ImportedAnswer

_guarded = guarded("import answers into")


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    added: int  # answers stored now
    unchanged: int  # answers that were already stored with the same choice
    pairs: int  # distinct pairs the file answered


class ImportRecords:
    """The import method of `LabelQueue` (needs `path` and `_db`)."""

    path: Path
    _db: QueueConnection

    @_guarded
    def import_answers(self, answers: Sequence[ImportedAnswer], source: str) -> ImportSummary:
        """Store every answer in one transaction, or raise LabelImportError and store none."""
        assert source in SOURCES
        conn, now = self._db.conn, time.time()
        seen: dict[tuple[int, str], tuple[str, str]] = {}
        added = unchanged = 0
        with self._db.lock, transaction(conn):
            for item in answers:
                row = conn.execute(
                    "SELECT key, shown_order, verdict FROM label_pairs WHERE id = ?",
                    (item.pair_id,),
                ).fetchone()
                if row is None or not item.key_tag or not row["key"].startswith(item.key_tag):
                    raise LabelImportError(
                        f"{item.where}: pair {item.pair_id} is not in the queue of {self.path} "
                        "(a file from another run, or edited ids?); nothing was imported."
                    )
                try:
                    choice = to_request_choice(item.shown_choice, row["shown_order"])
                except QueueRejection as err:
                    raise LabelImportError(f"{item.where}: {err}; nothing was imported.") from None
                earlier = seen.get((item.pair_id, item.annotator))
                if earlier is not None and earlier[0] != choice:
                    raise LabelImportError(
                        f"{item.where}: {item.annotator} answered pair {item.pair_id} "
                        f"differently in {earlier[1]}; fix the file, nothing was imported."
                    )
                seen[(item.pair_id, item.annotator)] = (choice, item.where)
                if earlier is not None:
                    continue
                annotator_id = self._import_annotator(item.annotator, source, now)
                stored = conn.execute(
                    "SELECT choice FROM label_answers WHERE pair_id = ? AND annotator_id = ?",
                    (item.pair_id, annotator_id),
                ).fetchone()
                if stored is not None:
                    if stored[0] != choice:
                        raise LabelImportError(
                            f"{item.where}: {item.annotator} already has answer {stored[0]!r} "
                            f"for pair {item.pair_id} in the ledger, the file says {choice!r}; "
                            "nothing was imported."
                        )
                    unchanged += 1
                    continue
                if row["verdict"] is not None:
                    raise LabelImportError(
                        f"{item.where}: pair {item.pair_id} was already decided "
                        f"({row['verdict']}) and used by the run; remove this answer from the "
                        "file. Nothing was imported."
                    )
                conn.execute(
                    "INSERT INTO label_answers VALUES (?, ?, ?, ?, ?, ?)",
                    (item.pair_id, annotator_id, choice, item.seconds, now, source),
                )
                added += 1
        return ImportSummary(added, unchanged, len({p for p, _ in seen}))

    def _import_annotator(self, name: str, source: str, now: float) -> int:
        conn = self._db.conn
        conn.execute(
            "INSERT OR IGNORE INTO label_annotators (name, token_sha256, source, created_at) "
            "VALUES (?, NULL, ?, ?)",
            (name, source, now),
        )
        return conn.execute("SELECT id FROM label_annotators WHERE name = ?", (name,)).fetchone()[0]
