"""What a judge call costs, and a hard budget that refuses a call before it could overspend.

Each call reserves its worst case before it is sent: every prompt byte counted as a token (a
byte-level BPE never makes more tokens than bytes) plus `max_tokens` of output. The reservation
is settled with the reported usage when the reply arrives, so concurrent in-flight calls can
never push the total past the budget.
"""

from __future__ import annotations

import logging
import threading

from apl.errors import BudgetExceededError, ConfigError

logger = logging.getLogger(__name__)

# USD per 1M tokens (input, output), list prices when written; override with `prices=`.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),  # the paper's oracle
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4": (30.0, 60.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-3.5-turbo": (0.5, 1.5),
}
MESSAGE_OVERHEAD_TOKENS = 8  # role and separator tokens per chat message, rounded up


def resolve_price(
    model: str, prices: dict[str, tuple[float, float]] | None = None
) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens: user table first, then defaults; a dated snapshot
    (`gpt-4o-2024-08-06`) falls back to its longest listed prefix. None when unknown."""
    table = {**DEFAULT_PRICES, **{k: tuple(v) for k, v in (prices or {}).items()}}
    for name, price in table.items():
        if len(price) != 2 or min(price) < 0:
            raise ConfigError(
                f"prices[{name!r}] = {price!r}; give [input, output] USD per 1M tokens, both >= 0."
            )
    if model in table:
        return table[model]  # type: ignore[return-value]
    prefixes = [name for name in table if model.startswith(name + "-")]
    return table[max(prefixes, key=len)] if prefixes else None  # type: ignore[return-value]


def call_cost(
    price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int
) -> float:
    """USD for one call's usage; 0 when the price is unknown."""
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def worst_case_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """An upper bound on the prompt tokens of these messages: UTF-8 bytes plus overheads."""
    size = sum(len(m["content"].encode("utf-8")) for m in messages)
    return size + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)


class Budget:
    """A USD and call-count ceiling shared by all threads of one judge; thread-safe."""

    def __init__(self, budget_usd: float | None = None, max_calls: int | None = None) -> None:
        if budget_usd is not None and budget_usd < 0:
            raise ConfigError(f"budget_usd ({budget_usd}) is negative; give a USD amount >= 0.")
        if max_calls is not None and max_calls < 0:
            raise ConfigError(f"max_calls ({max_calls}) is negative; give a count >= 0.")
        self.budget_usd = budget_usd
        self.max_calls = max_calls
        self.spent_usd = 0.0  # settled cost of finished calls
        self.calls = 0  # requests sent (retries included)
        self._reserved_usd = 0.0
        self._in_flight = 0
        self._cond = threading.Condition()

    def reserve(self, worst_usd: float) -> None:
        """Claim room for one call costing at most `worst_usd`, or raise BudgetExceededError.

        If calls in flight might free room when they settle, wait for them instead of failing.
        """
        with self._cond:
            while True:
                over_calls = self.max_calls is not None and self.calls + 1 > self.max_calls
                over_usd = (
                    self.budget_usd is not None
                    and self.spent_usd + self._reserved_usd + worst_usd > self.budget_usd + 1e-12
                )
                if not (over_calls or over_usd):
                    break
                if over_calls or self._in_flight == 0:
                    raise BudgetExceededError(self._refusal(worst_usd, over_calls))
                self._cond.wait()
            self.calls += 1
            self._in_flight += 1
            self._reserved_usd += worst_usd

    def settle(self, worst_usd: float, actual_usd: float) -> None:
        """Replace a reservation with what the call actually cost."""
        with self._cond:
            self._reserved_usd -= worst_usd
            self._in_flight -= 1
            self.spent_usd += actual_usd
            self._cond.notify_all()

    def _refusal(self, worst_usd: float, over_calls: bool) -> str:
        spent = f"spent ${self.spent_usd:.4f} in {self.calls} calls"
        if over_calls:
            return (
                f"Judge budget: max_calls ({self.max_calls}) reached; {spent}. "
                "Raise max_calls to buy more labels."
            )
        return (
            f"Judge budget: the next call could cost up to ${worst_usd:.4f} and budget_usd "
            f"(${self.budget_usd:.4f}) would be exceeded; {spent}. Raise budget_usd to continue."
        )
