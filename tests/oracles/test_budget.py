"""The hard budget in one process: refuses before overspending, waits for calls in flight, and
keeps a refused call's stop until the limit is raised."""

from __future__ import annotations

import threading
import time

import pytest

from apl.errors import BudgetExceededError
from apl.oracles.budget import Budget, Limits


def test_budget_refuses_before_overspending_and_counts_calls():
    budget = Budget(budget_usd=1.0, max_calls=None)
    budget.settle(budget.reserve(0.6), 0.5)
    with pytest.raises(BudgetExceededError, match=r"up to \$0.6000 .*spent \$0.5000 in 1 calls"):
        budget.reserve(0.6)
    # A smaller call would fit, but a refused call stops the judge until the limit is raised:
    # otherwise a stopped run resumed with the same limit would still trickle out calls.
    with pytest.raises(BudgetExceededError, match=r"up to \$0.6000"):
        budget.reserve(0.5)
    budget.limits = Limits(budget_usd=1.1)
    budget.settle(budget.reserve(0.5), 0.5)  # the refused 0.6 fits now, so 0.5 may go
    assert budget.spent_usd == pytest.approx(1.0) and budget.calls == 2
    calls = Budget(max_calls=1)
    calls.reserve(0.0)
    with pytest.raises(BudgetExceededError, match=r"max_calls \(1\) reached"):
        calls.reserve(0.0)


def test_budget_waits_for_in_flight_calls_then_never_exceeds():
    budget = Budget(budget_usd=1.0)
    spent_by_thread: list[float] = []
    refused = []

    def worker() -> None:
        for _ in range(10):
            try:
                token = budget.reserve(0.3)  # worst case 0.3, actual 0.1
            except BudgetExceededError:
                refused.append(1)
                return
            time.sleep(0.002)
            budget.settle(token, 0.1)
            spent_by_thread.append(0.1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Waiting instead of failing lets spending reach the budget minus one worst case.
    assert budget.spent_usd <= 1.0 + 1e-9 and budget.spent_usd >= 1.0 - 0.3
    assert sum(spent_by_thread) == pytest.approx(budget.spent_usd) and refused
