"""Fixtures for the judges: a live chat-completions server and a once-per-session fitted IMDB judge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apl.oracles.openai_judge import OpenAIJudge
from apl.store.judgement_cache import JudgementCache

from .chat_server import ChatServer

TEST_KEY = "sk-test-0123456789abcdefSECRET"
# $1,000 per 1M tokens = $0.001 per token in and out: spend is easy to compute by hand.
TEST_PRICES = {"judge-test": (1000.0, 1000.0)}


@pytest.fixture()
def server() -> Iterator[ChatServer]:
    """A scripted chat-completions server on 127.0.0.1 (a random free port)."""
    srv = ChatServer().start()
    yield srv
    srv.stop()


@pytest.fixture()
def make_judge(server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., OpenAIJudge]:
    """Build an OpenAIJudge pointed at `server`, with fast backoff and a priced test model."""
    monkeypatch.setenv("APL_TEST_KEY", TEST_KEY)

    def build(**kwargs: Any) -> OpenAIJudge:
        options: dict[str, Any] = dict(
            model="judge-test",
            base_url=server.base_url,
            api_key_env="APL_TEST_KEY",
            prices=TEST_PRICES,
            order="fixed",
            concurrency=1,
            timeout_s=5.0,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            max_retries=3,
        )
        options.update(kwargs)
        return OpenAIJudge(**options)

    return build


@pytest.fixture()
def cache(tmp_path: Path) -> Iterator[JudgementCache]:
    """A real SQLite label cache on tmp_path."""
    with JudgementCache(tmp_path / "judgements.sqlite") as c:
        yield c


@pytest.fixture(scope="session")
def sentiment_dir(fitted_judge_cache: Path) -> Path:
    """A cache dir holding the offline judge's classifier, fitted once per test session (the
    session's one fit: a second directory fitted both models again, ~10-20 s)."""
    return fitted_judge_cache
