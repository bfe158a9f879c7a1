"""The spending limit: `budget_usd` and `max_calls`, checked before every request, across processes.

A judge asks its `Budget` for room before each HTTP request (`reserve`, at the request's worst
case) and reports what it cost when it ends (`settle`). The Budget keeps the count in a
`SpendJournal`: in memory by default (one process: `apl judge`, tests), or, once a run attaches
one, a write-ahead journal in the run's ledger, whose totals include every earlier process's
calls, so a limit holds for the whole run (see docs/ORACLES.md). Oracle modules never import
`apl.store`: the loop passes the ledger-backed journal in.

Totals count a settled call at its cost and a call still in flight (or lost in flight when a
process died) at its worst case. Once a call is refused, no smaller call slips in under the
same limit: the refused worst case must fit first, so a run stopped by its limit stays stopped
until the limit is raised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from apl.errors import BudgetExceededError, ConfigError


@dataclass(frozen=True)
class Limits:
    """A USD and a request-count ceiling; None is no limit."""

    budget_usd: float | None = None
    max_calls: int | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a journal refused a call: what it had counted and which limit the call would pass."""

    spent_usd: float  # settled calls at their cost, unsettled ones at their worst case
    calls: int
    worst_usd: float  # what the refused call (or an earlier refused one) could cost
    limits: Limits
    over_calls: bool  # the call count is final: waiting for calls in flight cannot help
    usd_option: str = "budget_usd"
    calls_option: str = "max_calls"
    where: str = ""  # e.g. "this run (every process)"
    hint: str = ""  # how to raise the limit; "{option}" becomes the option's name

    def message(self) -> str:
        """One line: what was spent, which limit stopped the judge, how to go on."""
        spent = f"spent ${self.spent_usd:.4f} in {self.calls} calls"
        if self.where:
            spent = f"{self.where} {spent}"
        if self.over_calls:
            head = f"{self.calls_option} ({self.limits.max_calls}) reached; {spent}."
            fix = self.hint.replace("{option}", self.calls_option) or (
                f"Raise {self.calls_option} to buy more labels."
            )
        else:
            head = (
                f"the next call could cost up to ${self.worst_usd:.4f} and {self.usd_option} "
                f"(${self.limits.budget_usd:.4f}) would be exceeded; {spent}."
            )
            fix = self.hint.replace("{option}", self.usd_option) or (
                f"Raise {self.usd_option} to continue."
            )
        return f"Judge budget: {head} {fix}"


def check_limits(
    spent_usd: float,
    calls: int,
    worst_usd: float,
    blocked_usd: float,
    limits: Limits,
    **labels: str,
) -> Refusal | None:
    """None if one more call of `worst_usd` fits; else why not.

    `blocked_usd` is the largest worst case refused since the last call was let through: it
    must fit before any other call may go. `labels` fill Refusal's option names, where, hint.
    """
    over_calls = limits.max_calls is not None and calls + 1 > limits.max_calls
    need = max(worst_usd, blocked_usd)
    over_usd = limits.budget_usd is not None and spent_usd + need > limits.budget_usd + 1e-12
    if not (over_calls or over_usd):
        return None
    return Refusal(spent_usd, calls, need, limits, over_calls, **labels)


class SpendJournal(Protocol):
    """Where a Budget counts calls; the loop's ledger-backed one makes the count survive crashes."""

    def reserve(self, judge_id: str, key: str, worst_usd: float, limits: Limits) -> int | Refusal:
        """Atomically check `limits` against everything counted and record the call as in
        flight (a token), or record and return the refusal."""

    def settle(self, token: int, actual_usd: float, failed: bool) -> None:
        """Replace a call's worst case with what it cost (`failed`: it got no usable answer)."""

    def totals(self) -> tuple[float, int]:
        """(USD counted, calls counted) so far."""


class MemoryJournal:
    """The journal of a judge outside a run: this process's calls only; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, float] = {}  # token -> worst case of a call in flight
        self._settled_usd = 0.0
        self._calls = 0
        self._blocked_usd = 0.0
        self._next = 0

    def reserve(self, judge_id: str, key: str, worst_usd: float, limits: Limits) -> int | Refusal:
        """See SpendJournal.reserve."""
        with self._lock:
            spent = self._settled_usd + sum(self._open.values())
            refusal = check_limits(spent, self._calls, worst_usd, self._blocked_usd, limits)
            if refusal is not None:
                self._blocked_usd = max(self._blocked_usd, worst_usd)
                return refusal
            self._blocked_usd = 0.0
            self._next += 1
            self._open[self._next] = worst_usd
            self._calls += 1
            return self._next

    def settle(self, token: int, actual_usd: float, failed: bool) -> None:
        """See SpendJournal.settle."""
        with self._lock:
            self._open.pop(token)
            self._settled_usd += actual_usd

    def totals(self) -> tuple[float, int]:
        """See SpendJournal.totals."""
        with self._lock:
            return self._settled_usd + sum(self._open.values()), self._calls


class Budget:
    """A judge's USD and call ceiling over a SpendJournal, shared by all its threads."""

    def __init__(self, budget_usd: float | None = None, max_calls: int | None = None) -> None:
        if budget_usd is not None and budget_usd < 0:
            raise ConfigError(f"budget_usd ({budget_usd}) is negative; give a USD amount >= 0.")
        if max_calls is not None and max_calls < 0:
            raise ConfigError(f"max_calls ({max_calls}) is negative; give a count >= 0.")
        self.limits = Limits(budget_usd, max_calls)
        self.journal: SpendJournal = MemoryJournal()
        self._in_flight = 0  # this process's calls between reserve and settle
        self._cond = threading.Condition()

    def use_journal(self, journal: SpendJournal) -> None:
        """Count calls in `journal` from now on (call it between batches, never mid-call)."""
        with self._cond:
            assert self._in_flight == 0, "cannot switch journals while calls are in flight"
            self.journal = journal

    @property
    def spent_usd(self) -> float:
        """USD counted: settled calls at cost, unsettled ones at worst case."""
        return self.journal.totals()[0]

    @property
    def calls(self) -> int:
        """Requests counted (retries included)."""
        return self.journal.totals()[1]

    def reserve(self, worst_usd: float, judge_id: str = "", key: str = "") -> int:
        """Claim room for one call costing at most `worst_usd`; a token for `settle`.

        Raises BudgetExceededError (nothing is sent). While this process has calls in flight
        that might settle below their worst case, it waits for them instead of failing.
        """
        with self._cond:
            while True:
                outcome = self.journal.reserve(judge_id, key, worst_usd, self.limits)
                if not isinstance(outcome, Refusal):
                    self._in_flight += 1
                    return outcome
                if outcome.over_calls or self._in_flight == 0:
                    raise BudgetExceededError(outcome.message())
                self._cond.wait()

    def settle(self, token: int, actual_usd: float, failed: bool = False) -> None:
        """Replace a reservation with what the call actually cost."""
        try:
            self.journal.settle(token, actual_usd, failed)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
