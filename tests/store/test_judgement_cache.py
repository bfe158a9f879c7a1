"""The label cache on a real SQLite file: round trip, first answer wins, concurrent processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace

import pytest

from apl.errors import RunStoreError
from apl.store.judgement_cache import JudgementCache
from apl.types import Judgement, Verdict


def judgement(i: int, verdict: Verdict = Verdict.A) -> Judgement:
    return Judgement(
        verdict=verdict,
        rationale=f"reason {i}\nPreferred: {verdict.value}",
        shown_order="BA",
        prompt_tokens=10 + i,
        completion_tokens=5,
        cost_usd=0.001 * i,
        latency_s=0.5,
        judge_id="judge-x",
        retries=i % 3,
    )


def test_round_trip_first_answer_wins_and_survives_reopen(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    with JudgementCache(path) as cache:
        assert cache.get("k1") is None
        cache.put("k1", judgement(1))
        cache.put("k1", judgement(2, Verdict.B))  # INSERT OR IGNORE: the paid answer stays
        cache.put("k2", judgement(3, Verdict.INVALID))  # invalid answers were paid for too
    with JudgementCache(path) as reopened:
        got = reopened.get("k1")
        assert got == replace(judgement(1), from_cache=True)
        assert reopened.get("k2").verdict is Verdict.INVALID
        assert len(reopened) == 2 and reopened.total_cost_usd() == pytest.approx(0.004)
        assert reopened.total_cost_usd("other") == 0
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unusable_path_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunStoreError, match=r"cannot be opened .*; point it at a writable file"):
        JudgementCache(blocker / "cache.sqlite")


def _writer(path: str, worker: int, n: int) -> None:
    with JudgementCache(path) as cache:
        for i in range(n):
            cache.put(f"shared-{i}", judgement(i))  # every process races for these keys
            cache.put(f"own-{worker}-{i}", judgement(i, Verdict.B))
            assert cache.get(f"own-{worker}-{i}") is not None


def test_concurrent_writer_processes_lose_nothing_and_corrupt_nothing(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    JudgementCache(path).close()
    workers, n = 4, 150
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, no shared connection
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == n + workers * n
    with JudgementCache(path) as cache:
        assert all(cache.get(f"shared-{i}").prompt_tokens == 10 + i for i in range(n))
        assert all(cache.get(f"own-{w}-{n - 1}").verdict is Verdict.B for w in range(workers))
