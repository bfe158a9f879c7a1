"""Loop fixtures: a run config on the tiny model, judged by the offline judge or a local API."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the shared chat server

from oracles.chat_server import ChatServer, Reply, user_message  # noqa: E402

POSITIVE = re.compile(
    r"\b(good|great|best|love|loved|excellent|wonderful|fun|enjoy\w*|beautiful)\b", re.I
)


def prefer_positive(request: dict[str, Any]) -> Reply:
    """A deterministic stand-in for GPT-4: the review with more positive words wins, else the longer."""
    if not request.get("messages"):  # a client killed mid-request sent no body
        return Reply(status=400, content="empty request")
    text = user_message(request)
    a = text.split("Review A:", 1)[1].split("Review B:", 1)[0]
    b = text.split("Review B:", 1)[1].split("First, provide", 1)[0]
    key_a, key_b = (len(POSITIVE.findall(a)), len(a)), (len(POSITIVE.findall(b)), len(b))
    winner = "A" if key_a >= key_b else "B"
    return Reply(
        content=f"Comparison: {winner} is more positive.\nPreferred: {winner}", delay_s=0.03
    )


@pytest.fixture()
def judge_server():
    """A local chat-completions server judging by positive words, counting every request."""
    server = ChatServer(default=prefer_positive).start()
    yield server
    server.stop()


def run_config(model_dir: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A small, fast run on the tiny model; `sections` override whole config sections."""
    config: dict[str, Any] = {
        "task": {"name": "imdb"},
        "model": {"model_name_or_path": str(model_dir), "bf16": False},
        "generation": {"batch_size": 32},
        "acquisition": {"name": "certainty"},
        "oracle": {"name": "imdb_judge"},
        "loop": {"label_budget": 16, "query_size": 8, "pool_size": 24},
        "dpo": {"num_train_epochs": 3, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        "evaluation": {"num_prompts": 12},
        "output_dir": str(output_dir),
        "seed": 5,
    }
    config.update(sections)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a config dict as YAML."""
    path.write_text(yaml.safe_dump(config))
    return path


def subprocess_env(cache_dir: Path) -> dict[str, str]:
    """Environment for a real `apl` subprocess: offline, its own caches, the test API key."""
    env = dict(os.environ)
    env.update(
        APL_CACHE_DIR=str(cache_dir),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        APL_TEST_KEY="sk-test-key",
    )
    return env


@pytest.fixture(scope="session")
def judge_cache_dir(fitted_judge_cache: Path) -> Path:
    """One APL_CACHE_DIR per test session, so the offline judge is fitted once."""
    return fitted_judge_cache
