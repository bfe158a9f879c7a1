"""`oracle.api_key_env` names a variable; a pasted key is refused and never echoed."""

from __future__ import annotations

import pytest

from apl.errors import ConfigError
from apl.oracles import ORACLES
from apl.oracles.openai_judge import looks_like_key

KEYS = [
    "sk-abc123def456ghi789",
    "sk-proj-4fQ9xZ2mN7pL0aB3cD5eF8gH1jK6",
    "sk_live_51Habc",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "gsk_0123456789abcdefABCDEF",
    "AIzaSyD-abcdefghijklmnopqrstuvwx",
    "0123456789abcdef0123456789abcdef01234567",  # a 40-character hex token
    "3f9a2c7e1b8d4f6a0e5c9b2d7a1f8e3c",
    "Bearer abc",
    "my key",
]
NAMES = ["OPENAI_API_KEY", "APL_TEST_KEY", "AZURE_OPENAI_API_KEY_2", "my_judge_key", "KEY"]


@pytest.mark.parametrize("value", KEYS)
def test_keys_are_recognised(value):
    assert looks_like_key(value)


@pytest.mark.parametrize("value", NAMES)
def test_variable_names_are_accepted(value):
    assert not looks_like_key(value)


def test_a_pasted_key_is_refused_without_echoing_it(monkeypatch):
    key = KEYS[1]
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    with pytest.raises(ConfigError) as info:
        ORACLES.build("openai_judge", {"api_key_env": key})
    message = str(info.value)
    assert message.startswith("oracle.api_key_env must be the NAME of an environment variable")
    assert key not in message and key[3:12] not in message and "\n" not in message
    assert ORACLES.build("openai_judge", {"api_key_env": "APL_TEST_KEY"}).api_key_env
