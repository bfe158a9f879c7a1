"""Helpers for tests that drive a real `apl` process judged by people (oracle `web`)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml


def web_run_config(tmp_path: Path, model_dir: Path, texts: list[str], **oracle) -> Path:
    """A two-round run (4 labels a round, 2 eval prompts) on the tiny model; its YAML path.

    The prompt pool is 80 review openings as a custom task: tokenising IMDB's 25k would
    dominate these tests.
    """
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"prompt": " ".join(t.split()[:10])}) + "\n" for t in texts[:80])
    )
    config = {
        "task": {"name": "custom", "path": str(prompts), "test_fraction": 0.2},
        "model": {"model_name_or_path": str(model_dir), "bf16": False},
        "generation": {"batch_size": 32},
        "acquisition": {"name": "random"},
        "oracle": {"name": "web", "serve": False, "poll_s": 0.1, **oracle},
        "loop": {"label_budget": 8, "query_size": 4, "pool_size": 8},
        "dpo": {"num_train_epochs": 2, "learning_rate": 1e-3, "per_device_train_batch_size": 4},
        "evaluation": {"num_prompts": 2},
        "output_dir": str(tmp_path / "run"),
        "seed": 5,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `apl` subprocesses: offline, their own caches."""
    return {**os.environ, "APL_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}


def query(ledger: Path, sql: str, *args) -> list[tuple]:
    """Rows from the run's ledger (an empty list while it or the table does not exist yet)."""
    if not ledger.exists():  # connecting would create it, and the run refuses a foreign file
        return []
    conn = sqlite3.connect(ledger, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_for(condition, what: str, timeout: float = 180.0, procs=()) -> None:
    """Poll `condition()` until true; fail early if a process it depends on died."""
    deadline = time.monotonic() + timeout
    while not condition():
        for proc, log in procs:
            assert proc.poll() is None, f"{what}: process ended:\n{Path(log).read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`python -m apl ARGS` with output to a file (a pipe nobody reads could block it)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "apl", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
