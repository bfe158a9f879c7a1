"""DPOTrainer under real `accelerate launch`: 2 CPU processes on gloo vs 1 process, no fakes.

Two launches of tests/training/ddp_worker.py (2 ranks, per-device batch 4) and one plain 1-process
run (batch 8) train the tiny GPT-2 on the same 35 preferences: 32 train (4 global steps of 8 per
epoch, evenly divided) and 3 held out (uneven: accelerate pads both ranks' batch of 4 by cycling),
2 epochs, 2 reset-mode rounds. Rank 1 starts from skewed weights, as an unseeded LoRA init would.
Measured: first gradient within 4e-8 (scale 0.2), weights after 16 steps within 4e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_preferences

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_worker.py")
NUM_PREFERENCES, VALIDATION_FRACTION = 35, 3 / 35  # 32 train + 3 validation rows
BATCH = 4  # per device on 2 ranks; the 1-process peer uses 2 * BATCH


def _run(cmd: list[str], timeout: int = 180) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}"


def _worker_args(model_dir: Path, prefs: Path, out: Path, batch: int) -> list[str]:
    return [
        str(WORKER), "--model-dir", str(model_dir), "--preferences", str(prefs),
        "--out", str(out), "--batch-size", str(batch),
        "--validation-fraction", str(VALIDATION_FRACTION), "--skew-rank", "1",
    ]  # fmt: skip


def _launch(model_dir: Path, prefs: Path, out: Path) -> list[dict]:
    """`accelerate launch` 2 processes on CPU; --multi_gpu picks torchrun (--cpu alone starts 1)."""
    _run([
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
        "--main_process_port", "0",  # accelerate picks a free port
        *_worker_args(model_dir, prefs, out, BATCH),
    ])  # fmt: skip
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.fixture(scope="module")
def runs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"a": [rank0, rank1], "b": [rank0, rank1], "single": rank0} from three real runs."""
    from transformers import AutoTokenizer

    tmp = tmp_path_factory.mktemp("ddp")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [
        {"uid": p.prompt.uid, "prompt": p.prompt.text,
         "chosen": list(p.chosen.token_ids), "rejected": list(p.rejected.token_ids)}
        for p in make_preferences(tokenizer, NUM_PREFERENCES)
    ]  # fmt: skip
    prefs = tmp / "preferences.json"
    prefs.write_text(json.dumps(rows))
    a = _launch(tiny_model_dir, prefs, tmp / "a")
    b = _launch(tiny_model_dir, prefs, tmp / "b")
    _run([sys.executable, *_worker_args(tiny_model_dir, prefs, tmp / "single", 2 * BATCH)])
    return {"a": a, "b": b, "single": torch.load(tmp / "single" / "rank0.pt")}


def _max_diff(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> float:
    assert x.keys() == y.keys()
    return max((x[n] - y[n]).abs().max().item() for n in x)


def test_launch_runs_two_gloo_ranks(runs):
    for rank, result in enumerate(runs["a"]):
        assert result["rank"] == rank and result["num_processes"] == 2
        assert result["distributed_type"] == "MULTI_CPU" and result["backend"] == "gloo"
    assert runs["single"]["num_processes"] == 1 and runs["single"]["backend"] is None


def test_every_rank_holds_identical_weights(runs):
    rank0, rank1 = runs["a"]
    assert _max_diff(rank0["start"], rank1["start"]) == 0  # DDP broadcast rank 0's weights
    assert _max_diff(rank0["first_grads"], rank1["first_grads"]) == 0  # all-reduced
    # Two reset rounds later (reset() reloads theta_0 on every rank) the ranks still agree.
    assert _max_diff(rank0["final"], rank1["final"]) == 0
    assert _max_diff(rank0["final"], rank0["start"]) > 1e-3  # and training moved them


def test_two_ranks_match_one_process_over_the_same_global_batch(runs):
    rank0, single = runs["a"][0], runs["single"]
    grads, peer = rank0["first_grads"], single["first_grads"]
    scale = max(g.abs().max().item() for g in peer.values())
    assert scale > 0
    # DDP's mean of two batch-4 gradients == one batch-8 gradient, up to summation order.
    assert _max_diff(grads, peer) < 1e-5 * scale
    assert _max_diff(rank0["start"], single["start"]) == 0
    # 16 Adam steps at lr 1e-3 later (each moves a weight up to 1e-3): same up to float noise.
    assert _max_diff(rank0["final"], single["final"]) < 5e-5


def test_rank0_reports_global_metrics(runs):
    rank0, rank1 = runs["a"]
    assert rank0["histories"] == rank1["histories"]  # gathered: not each rank's own shard
    for ddp_round, single_round in zip(rank0["histories"], runs["single"]["histories"]):
        assert len(ddp_round) == len(single_round) == 2
        for ddp, single in zip(ddp_round, single_round):
            assert ddp.keys() == single.keys() and "eval/loss" in ddp
            for key, value in single.items():  # eval/* too: the padded copies were dropped
                assert ddp[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_reference_log_probs_computed_once_per_rank(runs):
    for result in runs["a"]:
        after_first, after_second = result["reference_scored"]
        assert after_first[0] == 2 * NUM_PREFERENCES  # each sequence once, for 2 epochs
        assert after_second == after_first  # round 2 ran no reference forward at all


def test_same_seed_same_result_across_launches(runs):
    for first, second in zip(runs["a"], runs["b"]):
        assert _max_diff(first["final"], second["final"]) == 0
        assert first["histories"] == second["histories"]
