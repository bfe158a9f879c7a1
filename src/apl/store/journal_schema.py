"""The call journal's schema (`oracle_calls`), shared by run ledgers and sweep spend files.

Running totals live in a one-row table kept by triggers inside each writing transaction, so a
reservation reads O(1) rows however many calls a run (or a whole sweep) has made, and no writer
can forget to update them. The rows remain the record: `CALL_TOTALS_RECOUNT` recomputes the
totals from them (tests compare the two).
"""

from __future__ import annotations

import sqlite3

_COUNTED = "CASE {row}.state WHEN 'in_flight' THEN {row}.worst_usd ELSE {row}.actual_usd END"
_NEW, _OLD = _COUNTED.format(row="NEW"), _COUNTED.format(row="OLD")

SCHEMA = f"""
CREATE TABLE oracle_calls (
    id INTEGER PRIMARY KEY,
    judge_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    run TEXT,
    state TEXT NOT NULL CHECK (state IN ('in_flight', 'settled', 'failed', 'refused')),
    worst_usd REAL NOT NULL,
    actual_usd REAL,
    calls INTEGER NOT NULL DEFAULT 1,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    settled_at REAL);
CREATE INDEX oracle_calls_state ON oracle_calls (state, id);
CREATE TABLE oracle_calls_totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    counted_usd REAL NOT NULL, calls INTEGER NOT NULL, unsettled INTEGER NOT NULL,
    last_call INTEGER NOT NULL);
INSERT INTO oracle_calls_totals VALUES (0, 0.0, 0, 0, 0);
CREATE TRIGGER oracle_calls_added AFTER INSERT ON oracle_calls WHEN NEW.state != 'refused'
BEGIN
    UPDATE oracle_calls_totals SET counted_usd = counted_usd + ({_NEW}),
        calls = calls + NEW.calls, unsettled = unsettled + (NEW.state = 'in_flight'),
        last_call = NEW.id;
END;
CREATE TRIGGER oracle_calls_changed AFTER UPDATE ON oracle_calls WHEN OLD.state != 'refused'
BEGIN
    UPDATE oracle_calls_totals SET counted_usd = counted_usd - ({_OLD}) + ({_NEW}),
        unsettled = unsettled - (OLD.state = 'in_flight') + (NEW.state = 'in_flight');
END;
CREATE TRIGGER oracle_calls_removed AFTER DELETE ON oracle_calls WHEN OLD.state != 'refused'
BEGIN
    UPDATE oracle_calls_totals SET counted_usd = counted_usd - ({_OLD}),
        calls = calls - OLD.calls, unsettled = unsettled - (OLD.state = 'in_flight');
END;
"""

# (USD counted, requests, unsettled): a settled or failed call at its cost, an unsettled one
# (in flight, or lost when its process died) at its worst case; refusals are not calls.
CALL_TOTALS = "SELECT counted_usd, calls, unsettled FROM oracle_calls_totals"
CALL_TOTALS_RECOUNT = (
    "SELECT COALESCE(SUM(CASE state WHEN 'in_flight' THEN worst_usd ELSE actual_usd END), 0.0), "
    "COALESCE(SUM(calls), 0), COALESCE(SUM(state = 'in_flight'), 0) "
    "FROM oracle_calls WHERE state != 'refused'"
)
# The largest worst case refused since the last call let through: it must fit first.
BLOCKED = (
    "SELECT COALESCE(MAX(worst_usd), 0.0) FROM oracle_calls WHERE state = 'refused' "
    "AND id > (SELECT last_call FROM oracle_calls_totals)"
)


def statements(script: str) -> list[str]:
    """Split a script into complete statements (a trigger body holds semicolons of its own)."""
    out, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer)
            buffer = ""
    return out


def create_journal(conn: sqlite3.Connection) -> None:
    """Create the journal's tables and triggers (inside the caller's transaction)."""
    for statement in statements(SCHEMA):
        conn.execute(statement)


def add_journal_to_v1_ledger(conn: sqlite3.Connection) -> None:
    """Ledger schema 1 -> 2: the journal, opened with what the run paid before it existed.

    Per judge, one settled row sums the stored verdicts' costs and counts their requests
    (retries included; two for a `both` verdict), label and evaluation verdicts alike, so
    earlier spend counts against the limit. Cache hits and the free offline judge are left out.
    """
    create_journal(conn)
    for table in ("verdicts", "eval_verdicts"):
        conn.execute(
            "INSERT INTO oracle_calls (judge_id, request_key, state, worst_usd, actual_usd, "
            "calls, pid, started_at, settled_at) "
            f"SELECT judge_id, 'before-journal:{table}', 'settled', SUM(cost_usd), "
            "SUM(cost_usd), SUM(1 + retries + (shown_order = 'both')), 0, MIN(created_at), "
            f"MAX(created_at) FROM {table} "
            "WHERE from_cache = 0 AND (cost_usd > 0 OR judge_id LIKE 'openai_judge:%') "
            "GROUP BY judge_id"
        )
