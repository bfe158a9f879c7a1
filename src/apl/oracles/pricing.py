"""What a judge call costs, and the most it could cost (what the budget reserves before sending).

The worst case counts every prompt byte as a token (a byte-level BPE never makes more tokens
than bytes) plus `max_tokens` of output; `apl.oracles.budget` reserves it before each request
and settles it with the reported usage when the reply arrives.
"""

from __future__ import annotations

import logging

from apl.errors import ConfigError

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
