"""Price table and the hard budget under concurrency."""

from __future__ import annotations

import threading
import time

import pytest

from apl.errors import BudgetExceededError, ConfigError
from apl.oracles.pricing import Budget, call_cost, resolve_price, worst_case_prompt_tokens


def test_price_lookup_user_table_and_snapshots():
    assert resolve_price("gpt-4-1106-preview") == (10.0, 30.0)
    assert resolve_price("gpt-4o-mini-2024-07-18") == (0.15, 0.6)  # longest prefix, not gpt-4o
    assert resolve_price("llama3") is None
    assert resolve_price("llama3", {"llama3": [0, 0]}) == (0, 0)
    assert resolve_price("gpt-4o", {"gpt-4o": (1, 2)}) == (1, 2)
    with pytest.raises(ConfigError, match=r"prices\['x'\]"):
        resolve_price("x", {"x": (1,)})
    assert call_cost((10.0, 30.0), 1000, 100) == pytest.approx(0.013)
    assert call_cost(None, 1000, 100) == 0


def test_worst_case_tokens_bound_bytes():
    messages = [{"role": "user", "content": "héllo"}]  # 6 UTF-8 bytes
    assert worst_case_prompt_tokens(messages) == 6 + 16


def test_budget_refuses_before_overspending_and_counts_calls():
    budget = Budget(budget_usd=1.0, max_calls=None)
    budget.reserve(0.6)
    budget.settle(0.6, 0.5)
    with pytest.raises(BudgetExceededError, match=r"up to \$0.6000 .*spent \$0.5000 in 1 calls"):
        budget.reserve(0.6)
    budget.reserve(0.5)  # exactly fits
    budget.settle(0.5, 0.5)
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
                budget.reserve(0.3)  # worst case 0.3, actual 0.1
            except BudgetExceededError:
                refused.append(1)
                return
            time.sleep(0.002)
            budget.settle(0.3, 0.1)
            spent_by_thread.append(0.1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Waiting instead of failing lets spending reach the budget minus one worst case.
    assert budget.spent_usd <= 1.0 + 1e-9 and budget.spent_usd >= 1.0 - 0.3
    assert sum(spent_by_thread) == pytest.approx(budget.spent_usd) and refused
