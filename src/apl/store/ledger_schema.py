"""The run ledger's SQLite schema, connection settings, and row <-> apl.types codecs."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from apl.errors import RunStoreError
from apl.store.journal_schema import add_journal_to_v1_ledger, create_journal
from apl.types import Completion, Judgement, Message, Prompt, Verdict

# 2: oracle_calls, the write-ahead journal of paid judge calls; 3: conversational prompts
# (`candidates.prompt_messages`, `eval_prompts.messages`)
SCHEMA_VERSION = 3
PHASES = ("candidates", "labelled", "trained", "evaluated")  # a round's steps, in order
# Who decided a label: the paid oracle, or the policy's own preference (a pseudo-label, which is
# never counted as a paid label or in spend).
SOURCES = ("oracle", "pseudo")
# Nullable columns added after SCHEMA_VERSION 1 shipped, by an idempotent ALTER TABLE on open
# (checked against PRAGMA table_info), so older ledgers of the same version read on.
ADDED_COLUMNS = (
    ("verdicts", "probability", "REAL"),
    ("eval_verdicts", "probability", "REAL"),
    ("verdicts", "source", f"TEXT NOT NULL DEFAULT 'oracle' CHECK (source IN {SOURCES!r})"),
)
BUSY_TIMEOUT_MS = 30_000  # `apl status` may read while a run writes; wait rather than fail

_JUDGEMENT_COLUMNS = """
    verdict TEXT NOT NULL CHECK (verdict IN ('A', 'B', 'tie', 'invalid')),
    rationale TEXT NOT NULL, shown_order TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, latency_s REAL NOT NULL, from_cache INTEGER NOT NULL,
    judge_id TEXT NOT NULL, retries INTEGER NOT NULL, created_at REAL NOT NULL,
    probability REAL"""

SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rounds (
    round INTEGER PRIMARY KEY,
    phase TEXT NOT NULL CHECK (phase IN {PHASES!r}),
    updated_at REAL NOT NULL);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY,
    round INTEGER NOT NULL REFERENCES rounds (round),
    rank INTEGER NOT NULL,
    prompt_uid TEXT NOT NULL, prompt_text TEXT NOT NULL,
    prompt_reference TEXT, prompt_label INTEGER,
    a_text TEXT NOT NULL, a_token_ids TEXT NOT NULL, a_logp REAL,
    b_text TEXT NOT NULL, b_token_ids TEXT NOT NULL, b_logp REAL,
    ref_logp_a REAL, ref_logp_b REAL, score REAL, extras TEXT NOT NULL,
    prompt_messages TEXT,
    UNIQUE (round, rank));
CREATE INDEX candidates_uid ON candidates (prompt_uid);
CREATE TABLE verdicts (
    candidate_id INTEGER PRIMARY KEY REFERENCES candidates (id),{_JUDGEMENT_COLUMNS},
    source TEXT NOT NULL DEFAULT 'oracle' CHECK (source IN {SOURCES!r}));
CREATE TABLE metrics (
    round INTEGER NOT NULL, key TEXT NOT NULL, value REAL,
    PRIMARY KEY (round, key));
CREATE TABLE history (
    round INTEGER NOT NULL, epoch INTEGER NOT NULL, key TEXT NOT NULL, value REAL,
    PRIMARY KEY (round, epoch, key));
CREATE TABLE eval_prompts (
    position INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, text TEXT NOT NULL,
    reference TEXT, label INTEGER, messages TEXT);
CREATE TABLE eval_baseline (
    uid TEXT PRIMARY KEY REFERENCES eval_prompts (uid),
    text TEXT NOT NULL, token_ids TEXT NOT NULL, logp REAL);
CREATE TABLE eval_completions (
    round INTEGER NOT NULL, uid TEXT NOT NULL REFERENCES eval_prompts (uid),
    text TEXT NOT NULL, token_ids TEXT NOT NULL, logp REAL,
    PRIMARY KEY (round, uid));
CREATE TABLE eval_verdicts (
    round INTEGER NOT NULL, uid TEXT NOT NULL REFERENCES eval_prompts (uid),{_JUDGEMENT_COLUMNS},
    PRIMARY KEY (round, uid));
"""


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) a ledger with WAL, synchronous=FULL and foreign keys on.

    synchronous=FULL: the ledger holds paid labels, so a commit must survive a power cut,
    not just a killed process; docs/STORE.md measures what that costs per verdict.
    `check_same_thread=False` for a connection its owner guards with a lock (the call journal).
    """
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        timeout=BUSY_TIMEOUT_MS / 1000,
        check_same_thread=check_same_thread,  # False: the caller serialises use with a lock
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    _ensure_schema(conn, path)
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    with transaction(conn):
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            create_journal(conn)  # oracle_calls: the write-ahead journal of paid calls
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?), ('created_at', ?)",
                (str(SCHEMA_VERSION), repr(time.time())),
            )
            return
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else -1
        while version in MIGRATIONS:  # older ledgers move forward in place, in this transaction
            MIGRATIONS[version](conn)
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    if version != SCHEMA_VERSION:
        raise RunStoreError(
            f"Ledger {path} has schema version {version}, this apl reads version "
            f"{SCHEMA_VERSION}; use the apl version that made the run, or a new output_dir."
        )
    add_missing_columns(conn)


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """Add any of ADDED_COLUMNS a ledger lacks (idempotent; a no-op on a current ledger).

    Reads PRAGMA table_info first, so opening a current ledger (`apl status` while a run
    writes) takes no write lock; the check is repeated inside the transaction.
    """

    def missing() -> list[tuple[str, str, str]]:
        out = []
        for table, column, decl in ADDED_COLUMNS:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                out.append((table, column, decl))
        return out

    if not missing():
        return
    with transaction(conn):
        for table, column, decl in missing():
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


# version -> the step that brings a ledger of that version to the next one.
def _add_chat_columns(conn: sqlite3.Connection) -> None:
    """2 -> 3: conversational prompts' (nullable) columns; plain-text rows keep NULL."""
    conn.execute("ALTER TABLE candidates ADD COLUMN prompt_messages TEXT")
    conn.execute("ALTER TABLE eval_prompts ADD COLUMN messages TEXT")


MIGRATIONS = {1: add_journal_to_v1_ledger, 2: _add_chat_columns}


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception: all or nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def encode_ids(token_ids: tuple[int, ...] | list[int]) -> str:
    """Token ids as compact JSON text (inspectable with the sqlite3 shell)."""
    return json.dumps(list(token_ids), separators=(",", ":"))


def decode_completion(text: str, token_ids: str, logp: float | None) -> Completion:
    """Rebuild a Completion from its stored columns."""
    return Completion(text=text, token_ids=tuple(json.loads(token_ids)), logp=logp)


def encode_messages(messages: tuple[Message, ...]) -> str | None:
    """A conversation as JSON `[{"role", "content"}, ...]`; None for a plain-text prompt."""
    return json.dumps([m.as_dict() for m in messages], ensure_ascii=False) if messages else None


def prompt_from_row(row: sqlite3.Row, prefix: str = "prompt_") -> Prompt:
    """Rebuild a Prompt from `<prefix>uid`, `<prefix>text`, ... columns."""
    messages = row[f"{prefix}messages"]
    return Prompt(
        uid=row[f"{prefix}uid"],
        text=row[f"{prefix}text"],
        reference=row[f"{prefix}reference"],
        label=row[f"{prefix}label"],
        messages=tuple(Message(m["role"], m["content"]) for m in json.loads(messages or "[]")),
    )


def judgement_values(judgement: Judgement) -> tuple[Any, ...]:
    """The Judgement's fields in the order of the judgement columns, plus created_at."""
    return (
        Verdict(judgement.verdict).value,
        judgement.rationale,
        judgement.shown_order,
        int(judgement.prompt_tokens),
        int(judgement.completion_tokens),
        float(judgement.cost_usd),
        float(judgement.latency_s),
        int(bool(judgement.from_cache)),
        judgement.judge_id,
        int(judgement.retries),
        time.time(),
        None if judgement.probability is None else float(judgement.probability),
    )


JUDGEMENT_FIELDS = (
    "verdict, rationale, shown_order, prompt_tokens, completion_tokens, "
    "cost_usd, latency_s, from_cache, judge_id, retries, created_at, probability"
)
JUDGEMENT_PLACEHOLDERS = ", ".join("?" * len(JUDGEMENT_FIELDS.split(",")))


def judgement_from_row(row: sqlite3.Row) -> Judgement:
    """Rebuild a Judgement from its stored columns."""
    return Judgement(
        verdict=Verdict(row["verdict"]),
        rationale=row["rationale"],
        shown_order=row["shown_order"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost_usd=row["cost_usd"],
        latency_s=row["latency_s"],
        from_cache=bool(row["from_cache"]),
        judge_id=row["judge_id"],
        retries=row["retries"],
        probability=row["probability"],
    )
