"""A real `apl run` process killed with SIGKILL at four points, resumed each time.

The judge is the OpenAI-compatible client talking to a real chat-completions server on
127.0.0.1 that counts requests. The killed-and-resumed run must end with the same labelled set
and the same metrics as an unbroken run with the same seed, and may only re-send a request that
was in flight at the moment of a kill (its answer never arrived, so it was never stored).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apl.store.ledger import Ledger

from .conftest import run_config, subprocess_env, user_message, write_config

pytestmark = pytest.mark.slow


def api_config(model_dir: Path, out: Path, base_url: str) -> dict:
    """Three rounds of 8 labels, judged over HTTP, with enough epochs to be caught training."""
    return run_config(
        model_dir,
        out,
        oracle={
            "name": "openai_judge",
            "model": "judge-test",
            "base_url": base_url,
            "api_key_env": "APL_TEST_KEY",
            "prices": {"judge-test": [1.0, 2.0]},
            "concurrency": 1,
            "backoff_base_s": 0.01,
            "timeout_s": 10.0,
        },
        loop={"label_budget": 24, "query_size": 8, "pool_size": 24},
        dpo={"num_train_epochs": 25, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        evaluation={"num_prompts": 16},
    )


class Child:
    """One `apl` subprocess and the ledger it writes."""

    def __init__(self, args: list[str], env: dict[str, str], ledger_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apl", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.ledger_path = ledger_path

    def wait_until(self, condition, timeout: float = 240.0) -> None:
        """Poll the ledger every 5 ms until `condition(ledger)` holds, then SIGKILL the child."""
        deadline = time.monotonic() + timeout
        while not self.ledger_path.exists():
            assert self.proc.poll() is None, self.proc.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with Ledger(self.ledger_path) as ledger:
            while not condition(ledger):
                assert self.proc.poll() is None, (
                    "run ended before the kill point: " + (self.proc.communicate()[0][-3000:])
                )
                assert time.monotonic() < deadline, "kill point never reached"
                time.sleep(0.005)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def finish(self) -> None:
        """Wait for a normal exit."""
        output, _ = self.proc.communicate(timeout=600)
        assert self.proc.returncode == 0, output[-4000:]


def summary(run_dir: Path) -> tuple[list, dict]:
    """The labelled set (round, rank, prompt, chosen, rejected) and per-round metrics."""
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        labels = [
            (
                lp.round,
                lp.rank,
                lp.preference.prompt.uid,
                lp.preference.chosen.token_ids,
                lp.preference.rejected.token_ids,
            )
            for lp in ledger.labelled()
        ]
        metrics = {
            r: {k: v for k, v in m.items() if not k.startswith("time/")}
            for r, m in ledger.metrics().items()
        }
        assert ledger._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return labels, metrics


def test_killed_run_resumes_to_the_same_result_without_rebuying(
    tmp_path, tiny_model_dir, judge_server
):
    # The unbroken reference run.
    straight = tmp_path / "straight"
    config = write_config(
        tmp_path / "a.yaml", api_config(tiny_model_dir, straight, judge_server.base_url)
    )
    Child(
        ["run", "-c", str(config)], subprocess_env(tmp_path / "cache-a"), straight / "ledger.sqlite"
    ).finish()
    straight_requests = [user_message(r) for r in judge_server.requests]
    assert len(straight_requests) == len(set(straight_requests))
    judge_server.requests.clear()

    # The same run, killed four times.
    broken = tmp_path / "broken"
    config = write_config(
        tmp_path / "b.yaml", api_config(tiny_model_dir, broken, judge_server.base_url)
    )
    env = subprocess_env(tmp_path / "cache-b")
    ledger_path = broken / "ledger.sqlite"
    in_flight = 0

    def count_verdicts(ledger: Ledger, round: int) -> int:
        return len(ledger.verdicts(round)) if ledger.phase(round) else 0

    # 1. Between oracle calls: three of round 1's labels are bought and stored.
    child = Child(["run", "-c", str(config)], env, ledger_path)
    child.wait_until(lambda ledger: count_verdicts(ledger, 1) >= 3)
    with Ledger(ledger_path) as ledger:
        held = len(ledger.verdicts(1))
        assert ledger.phase(1) == "candidates" and 3 <= held < 8
    assert held <= judge_server.count <= held + 1  # at most one call was in flight
    in_flight += 1

    # 2. During fine-tuning of round 1.
    child = Child(["resume", str(broken)], env, ledger_path)
    child.wait_until(lambda ledger: ledger.phase(1) == "labelled")
    with Ledger(ledger_path) as ledger:
        assert ledger.phase(1) == "labelled"

    # 3. During evaluation after round 1: some eval verdicts are in, not all.
    child = Child(["resume", str(broken)], env, ledger_path)
    child.wait_until(lambda ledger: len(ledger.eval_verdicts(1)) >= 2)
    with Ledger(ledger_path) as ledger:
        assert ledger.phase(1) == "trained" and len(ledger.eval_verdicts(1)) < 16
    in_flight += 1

    # 4. During generation of round 2's candidates.
    child = Child(["resume", str(broken)], env, ledger_path)
    child.wait_until(lambda ledger: ledger.phase(1) == "evaluated")
    with Ledger(ledger_path) as ledger:
        assert ledger.phase(2) is None

    Child(["resume", str(broken)], env, ledger_path).finish()

    assert summary(broken) == summary(straight)
    broken_requests = [user_message(r) for r in judge_server.requests]
    assert set(broken_requests) == set(straight_requests)
    repeats = collections.Counter(broken_requests) - collections.Counter(set(broken_requests))
    # Only a request in flight when the process died may be sent again: at most one per kill
    # that landed while the judge was busy (concurrency 1).
    assert sum(repeats.values()) <= in_flight
