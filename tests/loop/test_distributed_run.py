"""The whole loop under real `accelerate launch` (2 CPU ranks on gloo) against one process.

Every run is a real `apl` process tree judged over HTTP by a local chat-completions server that
records each request. The 2-rank run splits sampling (entropy's 4 Monte-Carlo samples of 24
prompts, the pairs, evaluation), the reference and policy scoring and DDP training; it must buy
exactly the labels one process buys and reach its metrics to float noise (DDP sums two halves of
each gradient: measured <= 1e-6 apart). Then one rank is SIGKILLed at a time and the run is
resumed, under accelerate and in one process: the result equals the unbroken run and no label
is bought twice (only a request in flight at a kill may be sent again).

`dpo.per_device_train_batch_size` is 16 for one process and 8 on 2 ranks (the same global batch
of 16); the killed run keeps 16 on 2 ranks as in one process, which accelerate's even batches
make the same step (rank 1 averages in a copy of rank 0's rows), so resuming it on either
number of processes must give the unbroken result.
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

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.store.ledger import Ledger

from .conftest import prefer_positive, run_config, subprocess_env, user_message, write_config

pytestmark = pytest.mark.slow

LAUNCH = [
    sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    "--num_cpu_threads_per_process", "1", "--main_process_port", "0", "-m", "apl",
]  # fmt: skip


@pytest.fixture(scope="module")
def judge():
    """One local chat-completions server for the module; each test reads its own requests."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from oracles.chat_server import ChatServer

    server = ChatServer(default=prefer_positive).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory, imdb_sample_texts) -> Path:
    """150 IMDB review openings: a pool that loads in milliseconds."""
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    lines = [json.dumps({"prompt": " ".join(t.split()[:8])}) for t in imdb_sample_texts[:150]]
    path.write_text("\n".join(lines) + "\n")
    return path


def config_for(model_dir: Path, out: Path, url: str, prompts: Path, batch: int) -> dict:
    """Two rounds of 8 entropy-chosen labels and 8 eval prompts, judged one call at a time."""
    return run_config(
        model_dir,
        out,
        task={"name": "custom", "path": str(prompts), "test_fraction": 0.3},
        generation={"batch_size": 8},  # many batches, so each rank has several
        acquisition={"name": "entropy", "num_samples": 4},
        oracle={
            "name": "openai_judge",
            "model": "judge-test",
            "base_url": url,
            "api_key_env": "APL_TEST_KEY",
            "prices": {"judge-test": [1.0, 2.0]},
            "concurrency": 1,
            "backoff_base_s": 0.01,
            "timeout_s": 20.0,
        },
        loop={"label_budget": 16, "query_size": 8, "pool_size": 24},
        dpo={"num_train_epochs": 2, "learning_rate": 2e-3, "per_device_train_batch_size": batch},
        evaluation={"num_prompts": 8},
    )


def summary(run_dir: Path) -> tuple[list, dict]:
    """The labelled set (round, rank, prompt, chosen, rejected) and per-round metrics."""
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        labels = [
            (lp.round, lp.rank, lp.preference.prompt.uid, lp.preference.chosen.token_ids,
             lp.preference.rejected.token_ids)
            for lp in ledger.labelled()
        ]  # fmt: skip
        metrics = {
            r: {k: v for k, v in m.items() if not k.startswith("time/")}
            for r, m in ledger.metrics().items()
        }
        assert ledger._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return labels, metrics


def assert_same_run(run_dir: Path, peer: Path) -> None:
    """The same labels and judged/counted metrics; training metrics to float noise.

    DDP adds two half-gradients where one process sums them in one pass: the trained weights,
    and so the DPO losses and rewards, differ in the 7th digit (measured up to 3e-7 relative).
    """
    (labels, metrics), (peer_labels, peer_metrics) = summary(run_dir), summary(peer)
    assert labels == peer_labels and len(labels) == 16
    assert metrics.keys() == peer_metrics.keys()
    for round, values in peer_metrics.items():
        assert metrics[round].keys() == values.keys()
        for key, value in values.items():
            if key.startswith(("eval/", "label/", "compute/")):
                assert metrics[round][key] == value, key  # judged and counted: exact
            else:
                assert metrics[round][key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def run_here(args: list[str], env: dict[str, str]) -> str:
    """`apl ARGS` in this process (one process; saves a start-up of torch)."""
    result = CliRunner().invoke(app, args, env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output[-4000:]
    return result.output


class Run:
    """`apl ARGS` under `accelerate launch` with 2 ranks (the launcher and its 2 processes)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*LAUNCH, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def finish(self) -> str:
        """Wait for a normal exit; the output."""
        out, _ = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, out[-4000:]
        return out

    def rank_pid(self, rank: int) -> int:
        """The pid of the worker process with RANK=rank among this launch's descendants."""
        children: dict[int, list[int]] = collections.defaultdict(list)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
        todo, found = [self.proc.pid], []
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        for pid in found[1:]:
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RANK={rank}".encode() in env:
                return pid
        raise AssertionError(f"no rank {rank} among {found}")

    def kill_when(self, ledger_path: Path, condition, rank: int, timeout: float = 240.0) -> str:
        """SIGKILL rank `rank` once `condition(ledger)` holds; the launch must then fail."""
        deadline = time.monotonic() + timeout
        while not ledger_path.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        with Ledger(ledger_path) as ledger:
            while not condition(ledger):
                assert self.proc.poll() is None, self.proc.communicate()[0][-3000:]
                assert time.monotonic() < deadline, "kill point never reached"
                time.sleep(0.005)
        os.kill(self.rank_pid(rank), signal.SIGKILL)
        out, _ = self.proc.communicate(timeout=120)  # torchrun stops the other rank
        assert self.proc.returncode != 0
        return out


@pytest.fixture(scope="module")
def runs(tiny_model_dir, judge, prompt_file, tmp_path_factory) -> dict:
    """An unbroken 1-process run and an unbroken 2-rank run, with the requests each sent."""
    tmp = tmp_path_factory.mktemp("dist")
    out = {}
    for name, batch in (("single", 16), ("two", 8)):
        judge.requests.clear()
        cfg = config_for(tiny_model_dir, tmp / name, judge.base_url, prompt_file, batch)
        args = ["run", "-c", str(write_config(tmp / f"{name}.yaml", cfg))]
        env = subprocess_env(tmp / f"cache-{name}")
        log = run_here(args, env) if name == "single" else Run(args, env).finish()
        out[name] = (tmp / name, [user_message(r) for r in judge.requests], log)
    out["tmp"] = tmp
    return out


def test_two_ranks_buy_the_labels_one_process_buys_and_reach_its_metrics(runs):
    (single, single_asked, _), (two, two_asked, log) = runs["single"], runs["two"]
    assert "Rank 1 of 2 (gloo)" in log and "Rank 0 of 2 (gloo)" in log
    assert "DPO's global batch: 8 per device x 2 processes x 1 accumulation = 16" in log
    assert "error" not in log and log.count("Exported 16 preferences") == 1  # rank 0 only
    assert_same_run(two, single)
    # The same requests, each once: rank 1 never called the judge.
    assert sorted(two_asked) == sorted(single_asked) and len(set(two_asked)) == len(two_asked)


def test_a_killed_rank_resumes_on_either_launch_without_buying_a_label_twice(
    runs, tiny_model_dir, judge, prompt_file
):
    tmp, (single, single_asked, _) = runs["tmp"], runs["single"]
    judge.requests.clear()
    broken = tmp / "broken"
    cfg = config_for(tiny_model_dir, broken, judge.base_url, prompt_file, 16)
    config = write_config(tmp / "broken.yaml", cfg)
    env = subprocess_env(tmp / "cache-broken")
    ledger_path = broken / "ledger.sqlite"

    # 1. Rank 1 dies while rank 0 buys round 1's labels.
    run = Run(["run", "-c", str(config)], env)
    run.kill_when(ledger_path, lambda ledger: len(ledger.verdicts(1)) >= 3, rank=1)
    with Ledger(ledger_path) as ledger:
        held = len(ledger.verdicts(1))
        assert ledger.phase(1) == "candidates" and 3 <= held < 8
    assert held <= len(judge.requests) <= held + 1  # at most the call in flight is lost

    # 2. Resumed on 2 ranks, rank 0 dies during round 1's evaluation.
    run = Run(["resume", str(broken)], env)
    run.kill_when(ledger_path, lambda ledger: len(ledger.eval_verdicts(1)) >= 2, rank=0)
    with Ledger(ledger_path) as ledger:
        assert ledger.phase(1) == "trained" and len(ledger.eval_verdicts(1)) < 8

    # 3. Resumed in one process, to the end.
    run_here(["resume", str(broken)], env)
    assert_same_run(broken, single)
    asked = [user_message(r) for r in judge.requests]
    assert set(asked) == set(single_asked)
    repeats = collections.Counter(asked) - collections.Counter(set(asked))
    assert sum(repeats.values()) <= 2  # one request in flight per kill, at most


def test_rank_0s_error_stops_every_rank_and_is_printed_once(
    tiny_model_dir, judge, prompt_file, tmp_path
):
    judge.requests.clear()
    cfg = config_for(tiny_model_dir, tmp_path / "run", judge.base_url, prompt_file, 8)
    cfg["oracle"]["max_calls"] = 2
    run = Run(["run", "-c", str(write_config(tmp_path / "a.yaml", cfg))], subprocess_env(tmp_path))
    out, _ = run.proc.communicate(timeout=300)
    assert run.proc.returncode != 0  # the launch fails with rank 0's status...
    assert out.count("error: Judge budget: oracle.max_calls (2) reached") == 1
    assert "exitcode  : 2" in out and "rank      : 1" not in out  # ...rank 1 ended cleanly
    assert len(judge.requests) == 2
    with Ledger(tmp_path / "run" / "ledger.sqlite") as ledger:
        assert len(ledger.verdicts(1)) == 2


def test_an_fsdp_launch_is_refused_before_anything_is_written(
    tiny_model_dir, prompt_file, tmp_path
):
    """`accelerate launch --use_fsdp` (as accelerate's FSDP config launches) stops with exit 2.

    Both ranks find it before their process group starts, so each prints the one-line error.
    """
    cfg = config_for(tiny_model_dir, tmp_path / "run", "http://127.0.0.1:9", prompt_file, 8)
    at = LAUNCH.index("--multi_gpu")
    fsdp = [*LAUNCH[:at], "--use_fsdp", "--fsdp_version", "2", *LAUNCH[at + 1 :]]
    done = subprocess.run(
        [*fsdp, "run", "-c", str(write_config(tmp_path / "a.yaml", cfg))],
        env=subprocess_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "exitcode  : 2" in out
    assert "error: `accelerate launch --use_fsdp` is not supported by `apl run`" in out
    assert "src/apl/" not in out  # no traceback of ours (torchrun prints its own summary)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
