"""Model work split over real ranks: 2 `accelerate launch` processes on gloo against 1 process.

tests/policy/shard_worker.py samples 16 prompts x 3 (8 length-sorted batches), scores the 48
completions under the policy and the reference (12 chunks), takes features, runs entropy's
acquisition (4 Monte-Carlo samples of each prompt) and the loop's evaluation sampling, once with
`Shards` over 2 ranks and once alone. Each rank runs whole batches of the 1-process order, so
the gathered results must be bit-identical to one process's, and each rank must have run only
part of the forward passes. Plus in-process checks of the per-completion random streams.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from apl.policy.sampling import encode_prompts, sample_completions
from apl.policy.streams import completion_streams, draw_lengths, prompt_seeds, uniform_table

WORKER = Path(__file__).with_name("shard_worker.py")


def _run(cmd: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def results(tiny_model_dir: Path, imdb_sample_texts, tmp_path_factory) -> dict:
    """{"single": rank0, "split": [rank0, rank1]} from one plain and one 2-rank launch."""
    tmp = tmp_path_factory.mktemp("shards")
    prompts = tmp / "prompts.txt"
    prompts.write_text(
        "\n".join(" ".join(t.split()[: 2 + i % 7]) for i, t in enumerate(imdb_sample_texts[:16]))
    )
    args = [str(WORKER), "--model-dir", str(tiny_model_dir), "--prompts", str(prompts)]
    _run([sys.executable, *args, "--out", str(tmp / "single")])
    _run([
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "1", "--main_process_port", "0",
        *args, "--out", str(tmp / "split"),
    ])  # fmt: skip
    load = lambda path: torch.load(path, weights_only=False)  # noqa: E731
    return {
        "single": load(tmp / "single" / "rank0.pt"),
        "split": [load(tmp / "split" / f"rank{r}.pt") for r in range(2)],
    }


@pytest.mark.slow
def test_two_ranks_give_every_rank_the_one_process_results_bit_for_bit(results):
    single = results["single"]
    for rank, split in enumerate(results["split"]):
        assert (split["rank"], split["world"]) == (rank, 2)
        assert split["samples"] == single["samples"]  # texts, token ids and log-probs
        assert split["policy_logps"] == single["policy_logps"]
        assert split["reference_logps"] == single["reference_logps"]
        assert np.array_equal(split["features"], single["features"])
        assert split["sequences_scored"] == single["sequences_scored"] == 48  # counts the run


@pytest.mark.slow
def test_each_rank_ran_only_its_share(results):
    single, ranks = results["single"], results["split"]
    for kind in ("policy", "reference"):
        alone = single["forwards"][kind]
        shares = [r["forwards"][kind] for r in ranks]
        assert all(0 < share < alone for share in shares), (kind, shares, alone)
    sampling = [r["forwards_sampling"]["policy"] for r in ranks]
    assert all(0 < s < single["forwards_sampling"]["policy"] for s in sampling)


@pytest.mark.slow
def test_entropy_samples_and_evaluation_are_split_and_equal_one_process(results):
    single, ranks = results["single"], results["split"]
    assert len(single["acquired"]) == 5 and len(single["evaluated"]) == 16  # 4 + 25% reserve
    for split in ranks:
        assert split["acquired"] == single["acquired"]  # prompts, pairs and entropies, exactly
        assert split["evaluated"] == single["evaluated"]
    for phase in ("forwards_entropy", "forwards_eval"):
        shares = [r[phase] for r in ranks]
        assert all(0 < share < single[phase] for share in shares), (phase, shares, single[phase])


def test_a_completion_depends_on_its_seed_not_on_its_batch(
    tiny_model_and_tokenizer, imdb_sample_texts
):
    model, tok = tiny_model_and_tokenizer
    prompts = [p[: 2 + i % 9] for i, p in enumerate(encode_prompts(tok, imdb_sample_texts[:12]))]
    seeds = prompt_seeds(5, [f"u{i}" for i in range(12)])
    kw = {"num_samples": 2, "temperature": 1.0, "min_new_tokens": 4, "max_new_tokens": 12}
    whole = sample_completions(model, tok, prompts, batch_size=24, seeds=seeds, **kw)
    small = sample_completions(model, tok, prompts, batch_size=2, seeds=seeds, **kw)
    subset = sample_completions(model, tok, prompts[5:8], batch_size=4, seeds=seeds[5:8], **kw)
    tokens = lambda out: [[c.token_ids for c in row] for row in out]  # noqa: E731
    assert tokens(small) == tokens(whole)  # other batch sizes, other neighbours: same tokens
    assert tokens(subset) == tokens(whole)[5:8]  # without the other prompts at all
    for a, b in zip(sum(small, []), sum(whole, []), strict=True):
        assert a.logp == pytest.approx(b.logp, abs=1e-4)  # padding changes only float noise
    other = sample_completions(
        model,
        tok,
        prompts,
        batch_size=24,
        seeds=prompt_seeds(6, [f"u{i}" for i in range(12)]),
        **kw,
    )
    assert tokens(other) != tokens(whole)
    assert len({len(c.token_ids) for row in whole for c in row}) > 2  # the lengths vary


def test_streams_are_uniform_and_independent():
    streams = completion_streams(prompt_seeds(0, [f"u{i}" for i in range(2000)]), 4)
    assert len(np.unique(streams)) == streams.size
    table = uniform_table(streams, 32, torch.device("cpu")).numpy()
    assert table.shape == (8000, 32) and table.min() >= 0 and table.max() < 1
    assert abs(table.mean() - 0.5) < 0.005 and abs(table.var() - 1 / 12) < 0.002
    assert abs(np.corrcoef(table[:, 0], table[:, 1])[0, 1]) < 0.03  # step to step
    assert abs(np.corrcoef(table[:, 0], table[::-1, 0])[0, 1]) < 0.03  # row to row
    lengths = draw_lengths(streams, 16, 24)
    assert lengths.min() == 16 and lengths.max() == 24
    counts = np.bincount(lengths.ravel() - 16)
    assert counts.min() > 0.8 * lengths.size / 9  # every length about equally often
    assert prompt_seeds(0, ["a", "a"])[0] != prompt_seeds(0, ["a", "a"])[1]  # a repeat is fresh
    assert prompt_seeds(0, ["a", "b"])[0] == prompt_seeds(0, ["a"])[0]  # no other prompt matters
