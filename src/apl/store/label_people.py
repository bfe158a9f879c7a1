"""Annotators of a run's label queue: link tokens, and per-person counts, time and agreement.

A link token is shown once (`apl label add-annotator`) and only its sha256 is stored, so the
ledger alone does not let anyone label. Adding a name again rotates its token: the old link
stops working. Imported answers get a token-less annotator named after the tool's user id.
"""

from __future__ import annotations

import hashlib
import secrets
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from sqlite3 import Connection

from apl.errors import ConfigError
from apl.store.fs import guarded, storage_errors
from apl.store.label_schema import Annotator, QueueConnection, has_label_tables
from apl.store.ledger_schema import connect, transaction

_guarded = guarded("use the annotators in")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator's answers, time per label and agreement with the others."""

    name: str
    source: str
    answers: int  # every answer, skips included
    a_or_b: int
    ties: int
    skips: int
    median_seconds: float | None  # time from the pair being shown to the answer (page only)
    agreement: float | None  # share of other annotators' answers on the same pairs that match
    compared: int  # how many such answers there were


@dataclass(frozen=True)
class AgreementSummary:
    """Per-annotator stats and the overall pairwise agreement over multi-annotated pairs."""

    annotators: list[AnnotatorStats]
    agreement: float | None  # matching pairs of answers / all pairs of answers on one pair
    compared_pairs: int  # pairs with two or more non-skip answers


def token_digest(token: str) -> str:
    """sha256 of a link token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """A valid annotator name, or ConfigError naming the rule."""
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise ConfigError(
            f"Annotator name {name!r} must be 1-64 letters, digits or . _ - @; pick another."
        )
    return name


class AnnotatorRecords:
    """Annotator methods of `LabelQueue` (needs `path` and `_db`)."""

    path: Path
    _db: QueueConnection

    @_guarded
    def add_annotator(self, name: str) -> str:
        """Create `name` (or rotate its token) and return the new secret link token."""
        check_name(name)
        token = secrets.token_urlsafe(24)
        with self._db.lock, transaction(self._db.conn):
            self._db.conn.execute(
                "INSERT INTO label_annotators (name, token_sha256, source, created_at) "
                "VALUES (?, ?, 'web', ?) ON CONFLICT (name) DO UPDATE SET "
                "token_sha256 = excluded.token_sha256",
                (name, token_digest(token), time.time()),
            )
        return token

    @_guarded
    def annotator_for_token(self, token: str) -> Annotator | None:
        """The annotator this link token belongs to, or None."""
        if not token or len(token) > 200:
            return None
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT id, name, source FROM label_annotators WHERE token_sha256 = ?",
                (token_digest(token),),
            ).fetchone()
        return None if row is None else Annotator(*row)

    @_guarded
    def annotators(self) -> list[Annotator]:
        """Every annotator, in the order they were added."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT id, name, source FROM label_annotators ORDER BY id"
            ).fetchall()
        return [Annotator(*row) for row in rows]

    @_guarded
    def agreement(self) -> AgreementSummary:
        """Per-annotator counts, median time per label and agreement."""
        with self._db.lock:
            return agreement_from(self._db.conn)


def agreement_from(conn: Connection) -> AgreementSummary:
    """Compute the annotator statistics from a ledger connection holding the label tables."""
    rows = conn.execute(
        "SELECT n.name, n.source, a.pair_id, a.choice, a.seconds, a.source FROM label_answers a "
        "JOIN label_annotators n ON n.id = a.annotator_id ORDER BY n.id, a.answered_at"
    ).fetchall()
    by_pair: dict[int, dict[str, str]] = defaultdict(dict)
    for name, _, pair, choice, _, _ in rows:
        if choice != "skip":
            by_pair[pair][name] = choice
    people: dict[str, dict] = {}
    for name, source, pair, choice, seconds, answer_source in rows:
        p = people.setdefault(
            name, {"source": source, "choices": [], "seconds": [], "agree": 0, "compared": 0}
        )
        p["choices"].append(choice)
        if seconds is not None and answer_source == "web":
            p["seconds"].append(seconds)
        if choice != "skip":
            others = [c for n, c in by_pair[pair].items() if n != name]
            p["agree"] += sum(c == choice for c in others)
            p["compared"] += len(others)
    stats = [
        AnnotatorStats(
            name=name,
            source=p["source"],
            answers=len(p["choices"]),
            a_or_b=sum(c in ("A", "B") for c in p["choices"]),
            ties=p["choices"].count("tie"),
            skips=p["choices"].count("skip"),
            median_seconds=statistics.median(p["seconds"]) if p["seconds"] else None,
            agreement=p["agree"] / p["compared"] if p["compared"] else None,
            compared=p["compared"],
        )
        for name, p in people.items()
    ]
    same = total = multi = 0
    for answers in by_pair.values():
        choices = list(answers.values())
        if len(choices) < 2:
            continue
        multi += 1
        for i in range(len(choices)):
            for j in range(i + 1, len(choices)):
                total += 1
                same += choices[i] == choices[j]
    return AgreementSummary(stats, same / total if total else None, multi)


def read_agreement(ledger_path: str | Path) -> AgreementSummary | None:
    """Annotator statistics of a run's ledger, or None if it never had a label queue."""
    path = Path(ledger_path)
    if not path.is_file():
        return None
    with storage_errors("read the annotators in", path):
        conn = connect(path)
        try:
            if not has_label_tables(conn):
                return None
            return agreement_from(conn)
        finally:
            conn.close()
