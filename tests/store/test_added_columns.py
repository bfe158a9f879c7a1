"""Columns added after schema version 1: idempotent migration, pseudo-labels kept apart."""

from __future__ import annotations

import re
import sqlite3

import pytest

from apl.store.journal_schema import create_journal
from apl.store.judgement_cache import SCHEMA as CACHE_SCHEMA
from apl.store.judgement_cache import JudgementCache
from apl.store.ledger import Ledger
from apl.store.ledger_schema import SCHEMA, SCHEMA_VERSION
from apl.types import Completion, Judgement, Pair, Prompt, Verdict


def _old_ledger(path) -> None:
    """A version-1 ledger as the previous release wrote it: no probability or source column."""
    old = re.sub(r",\s*probability REAL", "", SCHEMA)
    old = re.sub(r",\s*source TEXT NOT NULL DEFAULT 'oracle' CHECK \(source IN [^)]*\)\)", "", old)
    assert "probability" not in old and "source" not in old
    conn = sqlite3.connect(path)
    conn.executescript(old)
    create_journal(conn)  # the spend journal is older than these columns
    conn.execute(
        "INSERT INTO meta VALUES ('schema_version', ?), ('created_at', '0')", (str(SCHEMA_VERSION),)
    )
    conn.commit()
    conn.close()


def _columns(path, table):
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def _pairs(n):
    return [
        Pair(
            Prompt(f"p{i}", "A film"),
            Completion(" good", (1,), -1.0),
            Completion(" bad", (2,), -2.0),
        )
        for i in range(n)
    ]


def test_an_old_ledger_gains_the_columns_once_and_keeps_its_rows(tmp_path):
    path = tmp_path / "ledger.sqlite"
    _old_ledger(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO rounds VALUES (1, 'candidates', 0)")
    conn.execute(
        "INSERT INTO candidates (round, rank, prompt_uid, prompt_text, a_text, a_token_ids, "
        "b_text, b_token_ids, extras) VALUES (1, 0, 'p0', 'A film', ' good', '[1]', ' bad', '[2]', '{}')"
    )
    conn.execute("INSERT INTO verdicts VALUES (1, 'A', 'old', 'AB', 0, 0, 0.5, 0, 0, 'j', 0, 0)")
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        (old,) = ledger.labelled()
        assert old.source == "oracle" and old.judgement.probability is None
        assert ledger.spend().label_usd == 0.5
    first = {t: _columns(path, t) for t in ("verdicts", "eval_verdicts")}
    assert "source" in first["verdicts"] and "probability" in first["eval_verdicts"]
    with Ledger(path):  # a second open changes nothing
        pass
    assert {t: _columns(path, t) for t in ("verdicts", "eval_verdicts")} == first


def test_pseudo_labels_train_but_never_count_as_paid(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        a, b, c = ledger.save_candidates(1, _pairs(3))
        ledger.record_verdict(a.id, Judgement(Verdict.A, cost_usd=0.01, probability=0.8))
        ledger.record_verdict(b.id, Judgement(Verdict.B, judge_id="pseudo"), source="pseudo")
        ledger.record_verdict(c.id, Judgement(Verdict.TIE, cost_usd=0.01))
        assert ledger.label_counts() == (1, 1)
        assert len(ledger.preferences()) == 2  # training sees both
        assert [p.source for p in ledger.labelled()] == ["oracle", "pseudo"]
        assert len(ledger.preferences(source="oracle")) == 1
        spend = ledger.spend()
        assert spend.oracle_calls == 2 and spend.label_usd == pytest.approx(0.02)
        status = ledger.status(num_rounds=1)
        assert (status.labels, status.verdicts, status.pseudo_labels) == (1, 2, 1)
        assert ledger.verdict_for(a.id).probability == 0.8
        with pytest.raises(ValueError, match="source"):
            ledger.record_verdict(c.id, Judgement(Verdict.A), source="guess")


def test_the_label_cache_gains_probability_and_old_rows_read_none(tmp_path):
    path = tmp_path / "judgements.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(re.sub(r",\s*probability REAL", "", CACHE_SCHEMA))
    conn.execute("INSERT INTO judgements VALUES ('old', 'j', 'A', 'r', 'AB', 0, 0, 0, 0, 0, 0)")
    conn.commit()
    conn.close()
    with JudgementCache(path) as cache:
        assert cache.get("old").probability is None
        cache.put("new", Judgement(Verdict.B, judge_id="j", probability=0.25))
        assert cache.get("new").probability == 0.25
    with JudgementCache(path) as cache:  # idempotent
        assert cache.get("new").probability == 0.25
