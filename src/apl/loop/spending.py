"""The loop's side of the spending limit: the judge counts its calls in the run's ledger.

The oracle is built before the run directory exists, so it starts with an in-memory journal;
`track_spend` swaps in the ledger's write-ahead journal (and the sweep's shared spend file,
when the run belongs to a sweep with a limit) for as long as the run works. Oracle modules never
see `apl.store`: they get an object with `reserve` / `settle` / `totals`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from apl.oracles import Oracle
from apl.oracles.budget import Limits, Refusal, check_limits
from apl.store.run_dir import RunDir
from apl.store.spend_journal import (
    CallJournal,
    JournalTotals,
    missing_sweep_file,
    sweep_spend_file,
)


class RunSpendJournal:
    """A run's call journal, reserving against its sweep's shared file first when it has one.

    Order matters only after a crash: a sweep row is reserved before the run's and settled
    after it, so a kill between the two leaves the sweep over-counting, never under.
    """

    def __init__(self, run_dir: Path, run: CallJournal, sweep: CallJournal | None = None) -> None:
        self.run_dir, self.run, self.sweep = run_dir, run, sweep
        self._sweep_tokens: dict[int, int] = {}  # run token -> sweep token
        self._lock = threading.Lock()  # the judge's threads reserve and settle at once

    def _run_decision(self, worst_usd: float, limits: Limits):
        def decide(t: JournalTotals) -> Refusal | None:
            return check_limits(
                t.spent_usd,
                t.calls,
                worst_usd,
                t.blocked_usd,
                limits,
                usd_option="oracle.budget_usd",
                calls_option="oracle.max_calls",
                where="this run (every process so far)",
                hint=f"Raise it: `apl resume {self.run_dir} {{option}}=<more>`.",
            )

        return decide

    def _sweep_decision(self, worst_usd: float):
        def decide(t: JournalTotals) -> Refusal | None:
            return check_limits(
                t.spent_usd,
                t.calls,
                worst_usd,
                t.blocked_usd,
                Limits(t.budget_usd, t.max_calls),
                usd_option="the sweep's budget_usd",
                calls_option="the sweep's max_calls",
                where="the sweep's runs together",
                hint="Raise it in the sweep spec and run `apl sweep` again.",
            )

        return decide

    def reserve(self, judge_id: str, key: str, worst_usd: float, limits: Limits) -> int | Refusal:
        """Reserve in the sweep's file (if any), then in the run's ledger; both or neither."""
        sweep_token = None
        if self.sweep is not None:
            outcome = self.sweep.reserve(judge_id, key, worst_usd, self._sweep_decision(worst_usd))
            if isinstance(outcome, Refusal):
                return outcome
            sweep_token = outcome
        outcome = self.run.reserve(judge_id, key, worst_usd, self._run_decision(worst_usd, limits))
        if sweep_token is not None:
            if isinstance(outcome, Refusal):
                self.sweep.cancel(sweep_token)  # type: ignore[union-attr]
            else:
                with self._lock:
                    self._sweep_tokens[outcome] = sweep_token
        return outcome

    def settle(self, token: int, actual_usd: float, failed: bool) -> None:
        """Settle the run's row, then the sweep's."""
        self.run.settle(token, actual_usd, failed)
        with self._lock:
            sweep_token = self._sweep_tokens.pop(token, None)
        if sweep_token is not None:
            self.sweep.settle(sweep_token, actual_usd, failed)  # type: ignore[union-attr]

    def totals(self) -> tuple[float, int]:
        """The run's totals over every process."""
        totals = self.run.totals()
        return totals.spent_usd, totals.calls


@contextmanager
def track_spend(oracle: Oracle, run_dir: RunDir) -> Iterator[RunSpendJournal]:
    """Count `oracle`'s calls in the run's ledger (and its sweep's spend file) while inside."""
    with ExitStack() as stack:
        run = stack.enter_context(CallJournal.for_ledger(run_dir.ledger_path))
        sweep = None
        sweep_file = sweep_spend_file(run_dir.ledger_path)
        if sweep_file is not None:
            if not sweep_file.is_file():
                raise missing_sweep_file(run_dir.ledger_path, sweep_file)
            sweep = stack.enter_context(CallJournal.for_sweep(sweep_file, run=run_dir.path.name))
        journal = RunSpendJournal(run_dir.path, run, sweep)
        oracle.use_spend_journal(journal)
        if (evaluator := oracle.evaluation_judge()) is not oracle:  # e.g. `web` + an API judge
            evaluator.use_spend_journal(journal)
        yield journal
