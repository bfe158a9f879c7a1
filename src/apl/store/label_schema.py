"""The label queue's tables in the run's ledger, their rows as dataclasses, and the connection.

The tables are created with CREATE TABLE IF NOT EXISTS when a queue opens the ledger, so a
ledger made before them (or by a run whose oracle is not `web`) gains them without a schema
version bump, and they sit beside whatever else the ledger schema adds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from sqlite3 import Connection

from apl.store.fs import storage_errors
from apl.store.ledger_schema import connect, transaction

CHOICES = ("A", "B", "tie", "skip")  # an annotator's answer, in terms of the request's A and B
SOURCES = ("web", "label-studio", "argilla")

LABEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS label_pairs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    round INTEGER, purpose TEXT NOT NULL CHECK (purpose IN ('label', 'eval')),
    prompt TEXT NOT NULL, completion_a TEXT NOT NULL, completion_b TEXT NOT NULL,
    shown_order TEXT NOT NULL CHECK (shown_order IN ('AB', 'BA')),
    needed INTEGER NOT NULL CHECK (needed >= 1),
    created_at REAL NOT NULL,
    verdict TEXT CHECK (verdict IN ('A', 'B', 'tie', 'invalid')),
    decided_at REAL);
CREATE TABLE IF NOT EXISTS label_annotators (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_sha256 TEXT UNIQUE,
    source TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS label_answers (
    pair_id INTEGER NOT NULL REFERENCES label_pairs (id),
    annotator_id INTEGER NOT NULL REFERENCES label_annotators (id),
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie', 'skip')),
    seconds REAL,
    answered_at REAL NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (pair_id, annotator_id));
CREATE TABLE IF NOT EXISTS label_views (
    pair_id INTEGER NOT NULL REFERENCES label_pairs (id),
    annotator_id INTEGER NOT NULL REFERENCES label_annotators (id),
    shown_at REAL NOT NULL,
    PRIMARY KEY (pair_id, annotator_id));
CREATE TABLE IF NOT EXISTS label_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class QueueRejection(Exception):
    """A request the queue refuses, with the HTTP status that says why; nothing was changed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def to_request_choice(shown_choice: str, shown_order: str) -> str:
    """Map a choice about what was shown (left/right/tie/skip) to the request's A/B."""
    if shown_choice in ("tie", "skip"):
        return shown_choice
    if shown_choice not in ("left", "right"):
        raise QueueRejection(400, f"Unknown choice {shown_choice!r}; use left, right, tie or skip.")
    left_is_a = shown_order != "BA"
    choice = "A" if (shown_choice == "left") == left_is_a else "B"
    return choice


@dataclass(frozen=True)
class Answer:
    """One annotator's answer to one pair (choice in terms of the request's A and B)."""

    annotator: str
    choice: str
    seconds: float | None
    answered_at: float
    source: str


@dataclass(frozen=True)
class PairState:
    """A queued pair, its answers so far and its decided verdict (None until decided)."""

    id: int
    key: str
    round: int | None
    purpose: str
    prompt: str
    completion_a: str
    completion_b: str
    shown_order: str
    needed: int
    verdict: str | None
    answers: tuple[Answer, ...] = field(default=())

    @property
    def shown(self) -> tuple[str, str]:
        """(left text, right text) as annotators see them."""
        if self.shown_order == "BA":
            return self.completion_b, self.completion_a
        return self.completion_a, self.completion_b


@dataclass(frozen=True)
class Annotator:
    """A person (or an imported tool account) who answers pairs."""

    id: int
    name: str
    source: str


class QueueConnection:
    """One SQLite connection to a ledger, shared by threads under a lock; label tables ensured.

    The page is served on the server's thread while the loop polls on its own; the lock keeps
    each read-check-write (answer, undo, decide) one atomic step within this process, and
    BEGIN IMMEDIATE transactions keep it atomic against other processes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        with storage_errors("open the ledger", self.path):
            self.conn = connect(self.path, check_same_thread=False)
            with transaction(self.conn):
                for statement in LABEL_SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        with self.lock:
            self.conn.close()


def has_label_tables(conn: Connection) -> bool:
    """True if this ledger holds the label tables (a `web` run opened a queue on it)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'label_answers'"
    ).fetchone()
    return row is not None
