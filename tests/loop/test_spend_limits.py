"""Spending limits hold for a whole run and a whole sweep: across processes, SIGKILL and resume.

Real parts only: `apl` subprocesses judged by the OpenAI client over HTTP against a local
chat-completions server that bills, like a real API, every reply it produces (even one the
killed client never reads), real SQLite ledgers, and SIGKILL. The killed run and the sweep's
runs are separate processes; `apl resume` after a kill runs through the real CLI in this
process (each later process start would add ~10-40 s on the shared machine and test nothing
more: every count comes from the ledger, never from memory). A small custom prompt file
stands in for the 25k-review IMDB pool, which takes tens of seconds to cut per process.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from apl.cli import app
from apl.store.ledger import Ledger
from apl.store.spend_journal import SWEEP_SPEND_FILE, CallJournal

from .conftest import Reply, prefer_positive, run_config, subprocess_env, user_message, write_config

pytestmark = pytest.mark.slow

# USD per 1M tokens (input, output). Output dominates, so costs hardly depend on the texts: a
# reply of ~11 tokens costs about $1.15, a call's worst case (16 output tokens) about $1.75.
PRICE = (100.0, 100_000.0)
EPS = 1e-9  # the server and the journal add the same costs in different orders


def billing_judge(delay_s: float):
    """`prefer_positive` with the usage a real API reports (~4 bytes a token) and a delay."""

    def answer(request: dict[str, Any]) -> Reply:
        reply = prefer_positive(request)
        if reply.status != 200:
            return reply
        size = sum(len(m["content"].encode()) for m in request["messages"])
        reply.usage = (size // 4, len(reply.content.encode()) // 4 + 1)
        reply.delay_s = delay_s
        return reply

    return answer


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory, imdb_sample_texts) -> Path:
    """150 IMDB review openings: a pool that loads in milliseconds, not the 25k-review task."""
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    lines = [json.dumps({"prompt": " ".join(t.split()[:8])}) for t in imdb_sample_texts[:150]]
    path.write_text("\n".join(lines) + "\n")
    return path


def api_run(
    model_dir: Path, out: Path, base_url: str, prompts: Path, **oracle: Any
) -> dict[str, Any]:
    """Two rounds of 8 labels and 8 eval prompts judged over HTTP, 4 calls at a time."""
    return run_config(
        model_dir,
        out,
        task={"name": "custom", "path": str(prompts), "test_fraction": 0.3},
        oracle={
            "name": "openai_judge",
            "model": "judge-test",
            "base_url": base_url,
            "api_key_env": "APL_TEST_KEY",
            "prices": {"judge-test": list(PRICE)},
            "order": "fixed",
            "concurrency": 4,
            "max_tokens": 16,
            "backoff_base_s": 0.01,
            "timeout_s": 20.0,
            **oracle,
        },
        loop={"label_budget": 16, "query_size": 8, "pool_size": 16},
        dpo={"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        evaluation={"num_prompts": 8},
    )


def resume(out: Path, *overrides: str) -> Any:
    """`apl resume OUT OVERRIDES` through the CLI in this process (saves a process start)."""
    return CliRunner().invoke(app, ["resume", str(out), *overrides], env={"COLUMNS": "200"})


def counted(run_dir: Path) -> tuple[float, int, int]:
    """The run's journal: (USD counted, requests, unsettled)."""
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        spend = ledger.spend()
    return spend.counted_usd, spend.requests, spend.unsettled


def stored_texts(run_dir: Path) -> set[tuple[str, str]]:
    """(shown review A, shown review B) of every pair whose verdict the ledger holds."""
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        held = {c for r in ledger.rounds() for c in ledger.verdicts(r)}
        pairs = [c.pair for r in ledger.rounds() for c in ledger.candidates(r) if c.id in held]
        baseline = ledger.baseline()
        prompts = {p.uid: p for p in ledger.eval_prompts()}
        texts = {(p.prompt.text + p.a.text, p.prompt.text + p.b.text) for p in pairs}
        for r in ledger.rounds():
            completions = ledger.eval_completions(r)
            for uid in ledger.eval_verdicts(r):
                prompt = prompts[uid].text
                texts.add((prompt + completions[uid].text, prompt + baseline[uid].text))
    return {(a.strip(), b.strip()) for a, b in texts}


def shown(request: dict[str, Any]) -> tuple[str, str]:
    """The two reviews a request showed, as (A, B)."""
    text = user_message(request)
    a = text.split("Review A:", 1)[1].split("Review B:", 1)[0].strip()
    b = text.split("Review B:", 1)[1].split("First, provide", 1)[0].strip()
    return a, b


def test_run_budget_holds_across_sigkill_resume_and_a_raised_limit(
    tmp_path, tiny_model_dir, judge_server, monkeypatch, prompt_file
):
    judge_server.default = billing_judge(delay_s=0.4)
    out = tmp_path / "run"
    budget = 20.0
    config = write_config(
        tmp_path / "run.yaml",
        api_run(tiny_model_dir, out, judge_server.base_url, prompt_file, budget_usd=budget),
    )
    env = subprocess_env(tmp_path / "cache")

    # 1. SIGKILL while 4 calls (the judge's concurrency) are in flight: the server does and
    # bills them, the process never reads them.
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apl", "run", "-c", str(config)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while not (judge_server.count >= 8 and judge_server.in_flight == 4):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "never had 4 calls in flight"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before_kill = judge_server.count
    while judge_server.in_flight:  # the server finishes (and bills) the orphaned calls
        time.sleep(0.01)
    stored = stored_texts(out)
    spent, requests, unsettled = counted(out)
    assert requests == before_kill  # every request that left was journaled first
    assert 1 <= unsettled <= 4  # lost in flight: counted at their worst case from now on
    assert spent + EPS >= judge_server.bill_usd(PRICE)

    # 2. Resume with the same limit: it goes on until the limit, counting what the dead
    # process spent (a process-local count would have bought another $20), and stops first.
    monkeypatch.setenv("APL_CACHE_DIR", env["APL_CACHE_DIR"])
    monkeypatch.setenv("APL_TEST_KEY", env["APL_TEST_KEY"])
    resumed = resume(out)
    assert resumed.exit_code == 2, resumed.output[-3000:]
    assert "oracle.budget_usd ($20.0000) would be exceeded" in resumed.output
    assert judge_server.count > before_kill  # it did buy more
    spent, requests, unsettled = counted(out)
    bill = judge_server.bill_usd(PRICE)
    assert bill <= spent + EPS and spent <= budget and requests == judge_server.count

    sent = [shown(r) for r in judge_server.requests]
    assert not stored & set(sent[before_kill:])  # no answer in the ledger was asked again
    repeats = collections.Counter(sent) - collections.Counter(set(sent))
    assert sum(repeats.values()) <= 4  # only calls in flight at the kill (the concurrency)

    # 3. The same limit again: not one call.
    count = judge_server.count
    again = resume(out)
    assert again.exit_code == 2 and "Judge budget" in again.output
    assert judge_server.count == count

    # 4. A raised limit buys only the difference.
    raised = round(spent + 3.0, 4)
    more = resume(out, f"oracle.budget_usd={raised}")
    assert more.exit_code in (0, 2), more.output[-3000:]
    assert judge_server.count > count
    assert counted(out)[0] <= raised
    assert judge_server.bill_usd(PRICE) - bill <= raised - spent + EPS

    status = CliRunner().invoke(app, ["status", str(out)], env={"COLUMNS": "200"})
    assert status.exit_code == 0, status.output
    assert f"of ${raised:.4f} budget_usd" in status.output and "unsettled" in status.output


def test_sweep_limit_holds_for_parallel_runs_and_survives_resume(
    tmp_path, tiny_model_dir, judge_server, monkeypatch, prompt_file
):
    judge_server.default = billing_judge(delay_s=0.05)
    root = tmp_path / "sweep"
    base = api_run(tiny_model_dir, root / "_", judge_server.base_url, prompt_file)
    del base["output_dir"], base["seed"]
    spec = tmp_path / "sweep.yaml"
    limit = 9.0
    spec.write_text(
        yaml.safe_dump(
            {
                "base": base,
                "grid": {"seed": [1, 2]},
                "output_dir": str(root),
                "parallel": 2,
                "budget_usd": limit,
            }
        )
    )
    # `apl sweep` in this process; its runs are `apl run` subprocesses, two at a time.
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    result = CliRunner().invoke(app, ["sweep", str(spec), "--threads", "1"])
    assert result.exit_code != 0, result.output  # both runs stop at the sweep's limit
    runs = sorted(p for p in root.iterdir() if (p / "config.yaml").is_file())
    assert [p.name for p in runs] == ["certainty-seed1", "certainty-seed2"]
    logs = [(root / "logs" / f"{p.name}.log").read_text() for p in runs]
    assert all("the sweep's budget_usd ($9.0000) would be exceeded" in log for log in logs)

    with CallJournal.for_sweep(root / SWEEP_SPEND_FILE) as sweep:
        totals = sweep.totals()
        by_run = dict(
            sweep._conn.execute(
                "SELECT run, SUM(calls) FROM oracle_calls WHERE state != 'refused' GROUP BY run"
            ).fetchall()
        )
    bill = judge_server.bill_usd(PRICE)
    assert bill <= totals.spent_usd + EPS and totals.spent_usd <= limit
    assert totals.calls == judge_server.count
    assert set(by_run) <= {"certainty-seed1", "certainty-seed2"}
    assert sum(counted(p)[0] for p in runs) == pytest.approx(totals.spent_usd)

    # A child resumed on its own still counts against the sweep: the same limit, no call.
    count = judge_server.count
    resumed = resume(runs[0])
    assert resumed.exit_code == 2 and "the sweep's budget_usd" in resumed.output
    assert judge_server.count == count
    status = CliRunner().invoke(app, ["status", str(runs[0])], env={"COLUMNS": "200"})
    assert "sweep (all runs)" in status.output and "of $9.0000 budget_usd" in status.output
