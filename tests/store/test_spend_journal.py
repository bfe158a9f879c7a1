"""The write-ahead call journal on real SQLite files: totals, refusals, SIGKILL, migration."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest

from apl.oracles.budget import Limits, check_limits
from apl.store.journal_schema import CALL_TOTALS_RECOUNT
from apl.store.ledger import Ledger
from apl.store.spend_journal import CallJournal, link_run, sweep_spend_file
from apl.types import Verdict

from .test_ledger import judgement, make_pairs

ANY = lambda totals: None  # noqa: E731 - a decision that lets every call through


def under(limit: float, worst: float):
    """The budget's decision: refuse when `worst` (or an earlier refused call) might pass `limit`."""
    return lambda t: check_limits(t.spent_usd, t.calls, worst, t.blocked_usd, Limits(limit))


def test_unsettled_calls_count_at_worst_case_in_every_later_process(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with CallJournal.for_ledger(path) as journal:
        first = journal.reserve("judge", "k1", 1.0, ANY)
        journal.reserve("judge", "k2", 1.0, ANY)  # never settled: its process "dies"
        failed = journal.reserve("judge", "k3", 0.5, ANY)
        totals = journal.totals()
        assert (totals.spent_usd, totals.calls, totals.in_flight) == (2.5, 3, 3)
        journal.settle(first, 0.25, failed=False)
        journal.settle(failed, 0.5, failed=True)  # e.g. a timeout: it may have been billed
    with CallJournal.for_ledger(path) as later:  # a new connection, as a resumed process has
        totals = later.totals()
        assert (totals.spent_usd, totals.calls, totals.in_flight) == (1.75, 3, 1)
        # The running totals the triggers keep agree with a recount of the rows.
        assert tuple(later._conn.execute(CALL_TOTALS_RECOUNT).fetchone()) == (1.75, 3, 1)
    with Ledger(path) as ledger:
        spend = ledger.spend()
    assert (spend.counted_usd, spend.requests, spend.unsettled) == (1.75, 3, 1)


def test_a_refused_call_is_recorded_and_keeps_smaller_calls_out_until_the_limit_rises(tmp_path):
    with CallJournal.for_ledger(tmp_path / "ledger.sqlite") as journal:
        journal.settle(journal.reserve("judge", "k1", 0.6, under(1.0, 0.6)), 0.5, failed=False)
        refusal = journal.reserve("judge", "k2", 0.6, under(1.0, 0.6))
        assert refusal.worst_usd == 0.6 and refusal.spent_usd == 0.5
        smaller = journal.reserve("judge", "k3", 0.4, under(1.0, 0.4))  # 0.4 alone would fit
        assert not isinstance(smaller, int) and smaller.worst_usd == 0.6
        assert journal.totals().blocked_usd == 0.6 and journal.totals().calls == 1
        token = journal.reserve("judge", "k2", 0.6, under(1.1, 0.6))  # the limit was raised
        assert isinstance(token, int) and journal.totals().blocked_usd == 0.0
        journal.cancel(token)  # never sent: it counts for nothing
        assert journal.totals().calls == 1


WORKER = """
import sys, time
from apl.store.spend_journal import CallJournal

path, name, worst, actual = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
hang = sys.argv[5:] == ["hang"]  # the victim: holds its first call until it is killed
journal = CallJournal.for_sweep(path, run=name)
print("ready", flush=True)
while True:
    token = journal.reserve("judge", name, worst, lambda t: (
        "refused" if t.spent_usd + max(worst, t.blocked_usd) > t.budget_usd + 1e-12 else None))
    if not isinstance(token, int):
        print("refused", flush=True)
        break
    print("in flight", token, flush=True)
    time.sleep(3600 if hang else 0.01)
    journal.settle(token, actual, failed=False)
"""


def test_processes_sharing_a_file_never_pass_its_limit_even_when_one_is_killed(tmp_path):
    """Four real processes race for one sweep file's last dollars; one is SIGKILLed mid-call."""
    path = tmp_path / "sweep_spend.sqlite"
    with CallJournal.for_sweep(path) as sweep:
        sweep.set_limits(budget_usd=6.0, max_calls=None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), f"run{i}", "0.25", "0.1"]
            + (["hang"] if i == 0 else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    assert all(p.stdout.readline().strip() == "ready" for p in procs)
    victim = procs[0]
    while not victim.stdout.readline().startswith("in flight"):
        pass
    # Between reserve and settle (it holds the call until killed, so a slow reader under load
    # cannot let it settle first): its row stays in flight.
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    for proc in procs[1:]:
        assert proc.communicate(timeout=120)[0].strip().endswith("refused")
    with CallJournal.for_sweep(path) as sweep:
        totals = sweep.totals()
        rows = sweep._conn.execute(
            "SELECT state, worst_usd, actual_usd FROM oracle_calls WHERE state != 'refused'"
        ).fetchall()
    assert totals.spent_usd <= 6.0 + 1e-9 and totals.spent_usd > 6.0 - 0.25
    assert totals.in_flight == 1  # the killed process's call, counted at its worst case
    recount = sum(w if s == "in_flight" else a for s, w, a in rows)
    assert recount == pytest.approx(totals.spent_usd) and len(rows) == totals.calls
    with CallJournal.for_sweep(path) as sweep:
        assert sweep._conn.execute(CALL_TOTALS_RECOUNT).fetchone() == pytest.approx(
            (totals.spent_usd, totals.calls, totals.in_flight)
        )


def test_a_version_1_ledger_is_migrated_in_place_and_its_past_spend_counts(tmp_path):
    path = tmp_path / "ledger.sqlite"
    paid = "openai_judge:gpt-test@url|tpl=x"
    with Ledger(path) as ledger:
        candidates = ledger.save_candidates(1, make_pairs(4, "m"))
        ledger.record_verdict(candidates[0].id, replace(judgement(Verdict.A, 0.5), judge_id=paid))
        both = replace(judgement(Verdict.B, 0.25), judge_id=paid, shown_order="both", retries=1)
        ledger.record_verdict(candidates[1].id, both)  # 2 orders + 1 retry = 3 requests
        hit = replace(judgement(Verdict.A, 0.0, cached=True), judge_id=paid)
        ledger.record_verdict(candidates[2].id, hit)  # a cache hit: no request
        free = replace(judgement(Verdict.A, 0.0), judge_id="imdb_judge:v3", retries=0)
        ledger.record_verdict(candidates[3].id, free)  # the offline judge: no request
        prompts = [c.pair.prompt for c in candidates[:2]]
        ledger.save_eval_prompts(prompts)
        evals = {p.uid: replace(judgement(Verdict.A, 0.125), judge_id=paid) for p in prompts}
        ledger.record_eval_verdicts(1, evals)
    # Make it exactly what apl wrote before the journal existed: schema 1, no journal tables.
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE oracle_calls")  # its index and triggers go with it
    conn.execute("DROP TABLE oracle_calls_totals")
    conn.execute("ALTER TABLE candidates DROP COLUMN prompt_messages")  # nor chat (schema 3)
    conn.execute("ALTER TABLE eval_prompts DROP COLUMN messages")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    with Ledger(path) as ledger:  # migrated in place, nothing lost
        spend = ledger.spend()
        assert len(ledger.verdicts(1)) == 4 and len(ledger.eval_verdicts(1)) == 2
        version = ledger._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == "3"
    assert spend.counted_usd == pytest.approx(0.5 + 0.25 + 2 * 0.125)
    assert spend.requests == 3 + 3 + 2 * 3  # 1 + 2 retries; both orders + 1 retry; evals
    assert spend.unsettled == 0
    with Ledger(path) as ledger:
        recount = tuple(ledger._conn.execute(CALL_TOTALS_RECOUNT).fetchone())
    assert recount == pytest.approx((spend.counted_usd, spend.requests, 0))
    with CallJournal.for_ledger(path) as journal:  # the limit now starts from that spend
        refusal = journal.reserve("judge", "k", 0.1, under(1.0, 0.1))
        assert not isinstance(refusal, int) and refusal.spent_usd == pytest.approx(1.0)


def test_linking_a_run_to_a_sweep_counts_its_earlier_spend_once(tmp_path):
    run_dir = tmp_path / "sweep" / "run-a"
    run_dir.mkdir(parents=True)
    ledger_path = run_dir / "ledger.sqlite"
    with CallJournal.for_ledger(ledger_path) as journal:
        journal.settle(journal.reserve("judge", "k", 1.0, ANY), 0.75, failed=False)
        journal.reserve("judge", "k2", 0.5, ANY)  # lost in flight
    sweep_file = tmp_path / "sweep" / "sweep_spend.sqlite"
    link_run(ledger_path, sweep_file, "run-a")
    link_run(ledger_path, sweep_file, "run-a")  # a second `apl sweep`: nothing added twice
    assert sweep_spend_file(ledger_path) == run_dir / ".." / "sweep_spend.sqlite"
    with CallJournal.for_sweep(sweep_file) as sweep:
        totals = sweep.totals()
    assert (totals.spent_usd, totals.calls) == (1.25, 2)
