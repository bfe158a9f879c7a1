"""The judge counting in a run's ledger: limits over every process, fast (no model, no training).

Each "process" here is a new judge with a new journal connection to the same ledger file, as a
resumed run has; the judge talks HTTP to a real local server. tests/loop/test_spend_limits.py
does the same with real `apl` processes and SIGKILL.
"""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.config import load_config
from apl.errors import BudgetExceededError
from apl.loop.spending import RunSpendJournal
from apl.oracles.base import JudgeRequest
from apl.oracles.openai_judge import OpenAIJudge
from apl.store.run_dir import open_run_dir
from apl.store.spend_journal import CallJournal, link_run

PRICE = (0.0, 100_000.0)  # output only: the default reply (20 tokens) costs $2.00


@pytest.fixture()
def make_judge(judge_server, monkeypatch, tmp_path):
    """A judge of a run whose ledger is tmp_path/ledger.sqlite, as one process would build it."""
    monkeypatch.setenv("APL_TEST_KEY", "sk-test")
    journals: list[CallJournal] = []

    def build(sweep=None, **options) -> OpenAIJudge:
        judge = OpenAIJudge(
            model="judge-test",
            base_url=judge_server.base_url,
            api_key_env="APL_TEST_KEY",
            prices={"judge-test": PRICE},
            order="fixed",
            max_tokens=30,  # worst case $3.00
            backoff_base_s=0.01,
            **options,
        )
        journals.append(CallJournal.for_ledger(tmp_path / "ledger.sqlite"))
        judge.use_spend_journal(RunSpendJournal(tmp_path, journals[-1], sweep))
        return judge

    yield build
    for journal in journals:
        journal.close()


def requests(n: int, tag: str = "") -> list[JudgeRequest]:
    return [JudgeRequest(f"prompt {tag}{i}", " good", " bad") for i in range(n)]


def test_a_resumed_judge_continues_from_the_ledger_not_from_zero(make_judge, judge_server):
    with pytest.raises(BudgetExceededError, match=r"this run \(every process so far\) spent"):
        make_judge(budget_usd=10.0).judge_batch(requests(10))
    assert judge_server.count == 4  # $8 spent; a 5th call could reach $11
    # The next process with the same limit: not one call.
    with pytest.raises(BudgetExceededError, match=r"apl resume .* oracle.budget_usd=<more>"):
        make_judge(budget_usd=10.0).judge_batch(requests(10, "x"))
    assert judge_server.count == 4
    # A raised limit buys the difference only: $8 + $2 + $2, then $12 + $3 worst would pass 13.
    with pytest.raises(BudgetExceededError):
        make_judge(budget_usd=13.0).judge_batch(requests(10, "y"))
    assert judge_server.count == 6
    judge = make_judge(max_calls=7)  # max_calls counts every earlier process's requests too
    with pytest.raises(BudgetExceededError, match=r"oracle.max_calls \(7\) reached"):
        judge.judge_batch(requests(10, "z"))
    assert judge_server.count == 7 and judge.budget.calls == 7


def test_concurrent_runs_of_a_sweep_share_its_limit(judge_server, tmp_path, monkeypatch):
    """Two runs (own ledgers, own judges, 4 threads each) draw on one sweep file at once."""
    monkeypatch.setenv("APL_TEST_KEY", "sk-test")
    sweep_file = tmp_path / "sweep_spend.sqlite"
    with CallJournal.for_sweep(sweep_file) as sweep:
        sweep.set_limits(budget_usd=21.0, max_calls=None)
    errors: list[str] = []

    def run(name: str) -> None:
        (tmp_path / name).mkdir()
        with (
            CallJournal.for_ledger(tmp_path / name / "ledger.sqlite") as own,
            CallJournal.for_sweep(sweep_file, run=name) as shared,
        ):
            judge = OpenAIJudge(
                model="judge-test",
                base_url=judge_server.base_url,
                api_key_env="APL_TEST_KEY",
                prices={"judge-test": PRICE},
                max_tokens=30,
                concurrency=4,
            )
            judge.use_spend_journal(RunSpendJournal(tmp_path / name, own, shared))
            try:
                judge.judge_batch(requests(20, name))
            except BudgetExceededError as err:
                errors.append(str(err))

    threads = [threading.Thread(target=run, args=(name,)) for name in ("r1", "r2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with CallJournal.for_sweep(sweep_file) as sweep:
        totals = sweep.totals()
    assert len(errors) == 2 and all("the sweep's budget_usd ($21.0000)" in e for e in errors)
    assert totals.spent_usd <= 21.0 and totals.calls == judge_server.count
    assert judge_server.count * 2.0 <= 21.0  # the server's bill: $2 a reply
    assert judge_server.count >= 6  # the runs did draw the sweep's budget down


def test_status_shows_spend_against_the_run_and_sweep_limits(tmp_path):
    config = load_config(
        None,
        [
            f"output_dir={tmp_path / 'sweep' / 'run-a'}",
            "oracle.name=openai_judge",
            "oracle.budget_usd=5",
            "oracle.max_calls=100",
        ],
    )
    run = open_run_dir(config)
    with CallJournal.for_ledger(run.ledger_path) as journal:
        journal.settle(journal.reserve("judge", "k1", 0.5, lambda t: None), 0.25, failed=False)
        journal.reserve("judge", "k2", 0.5, lambda t: None)  # lost in flight
    sweep_file = tmp_path / "sweep" / "sweep_spend.sqlite"
    with CallJournal.for_sweep(sweep_file) as sweep:
        sweep.set_limits(budget_usd=9.0, max_calls=None)
    link_run(run.ledger_path, sweep_file, "run-a")
    result = CliRunner().invoke(app, ["status", str(run.path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "$0.7500 of $5.0000 budget_usd; 2 requests of 100 max_calls (1 unsettled" in (
        result.output
    )
    assert "$0.7500 of $9.0000 budget_usd; 2 requests (no max_calls)" in result.output
