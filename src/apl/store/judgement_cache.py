"""The label cache: every judgement in SQLite, so an identical request is never paid twice.

Keys come from the oracle (`apl.oracles.base.cache_key`: judge identity, shown order, draw and
the exact texts). WAL lets readers and writers in several processes work at once; a busy
timeout makes writers queue rather than fail; INSERT OR IGNORE keeps the first paid answer.
INVALID verdicts are stored too (they were paid for); whether to ask again is the caller's call.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from apl.errors import RunStoreError
from apl.types import Judgement, Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    judge_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    rationale TEXT NOT NULL,
    shown_order TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    retries INTEGER NOT NULL,
    created_at REAL NOT NULL,
    probability REAL
)
"""
COLUMNS = (
    "judge_id, verdict, rationale, shown_order, prompt_tokens, completion_tokens, "
    "cost_usd, latency_s, retries, probability"
)


class JudgementCache:
    """A SQLite file of judgements keyed by request; safe across threads and processes."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at commit
            self._conn.execute(SCHEMA)
            self._add_probability_column()
        except (sqlite3.Error, OSError) as err:
            raise RunStoreError(
                f"Judgement cache {self.path} cannot be opened ({err}); "
                "point it at a writable file or delete a corrupt one."
            ) from None
        self._lock = threading.Lock()

    def _add_probability_column(self) -> None:
        # Caches written before judgements carried a probability: add the nullable column once
        # (idempotent, checked against PRAGMA table_info); old rows read back as None.
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(judgements)")}
        if "probability" not in have:
            try:
                self._conn.execute("ALTER TABLE judgements ADD COLUMN probability REAL")
            except sqlite3.OperationalError as err:  # another process added it first
                if "duplicate column" not in str(err):
                    raise

    def get(self, key: str) -> Judgement | None:
        """The stored judgement for `key` (with `from_cache=True`), or None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM judgements WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        judge_id, verdict, rationale, order, p_tok, c_tok, cost, latency, retries, prob = row
        return Judgement(
            verdict=Verdict(verdict),
            rationale=rationale,
            shown_order=order,
            prompt_tokens=p_tok,
            completion_tokens=c_tok,
            cost_usd=cost,
            latency_s=latency,
            from_cache=True,
            judge_id=judge_id,
            retries=retries,
            probability=prob,
        )

    def put(self, key: str, judgement: Judgement) -> None:
        """Store `judgement` under `key` in its own transaction; an existing row is kept."""
        j = judgement
        values = (
            key,
            j.judge_id,
            j.verdict.value,
            j.rationale,
            j.shown_order,
            j.prompt_tokens,
            j.completion_tokens,
            j.cost_usd,
            j.latency_s,
            j.retries,
            j.probability,
            time.time(),
        )
        try:
            with self._lock:
                self._conn.execute(
                    f"INSERT OR IGNORE INTO judgements (key, {COLUMNS}, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
        except sqlite3.Error as err:
            raise RunStoreError(
                f"Judgement cache {self.path}: cannot store a judgement ({err}); "
                "check the disk and that no process holds a long write lock."
            ) from None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]

    def total_cost_usd(self, judge_id: str | None = None) -> float:
        """USD paid for everything stored (optionally for one judge)."""
        query, args = "SELECT COALESCE(SUM(cost_usd), 0) FROM judgements", ()
        if judge_id is not None:
            query, args = query + " WHERE judge_id = ?", (judge_id,)
        with self._lock:
            return float(self._conn.execute(query, args).fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JudgementCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
