"""Price table and worst-case call costs."""

from __future__ import annotations

import pytest

from apl.errors import ConfigError
from apl.oracles.pricing import call_cost, resolve_price, worst_case_prompt_tokens


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
