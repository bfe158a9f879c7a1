"""The pieces of the multi-process loop that one process can check: what a rank > 0 builds, the
one-process Cluster, refused launch settings and the calls rank 0 broadcasts in a whole run.
(The real multi-process runs are in test_distributed_run.py and tests/policy/test_sharding.py.)"""

from __future__ import annotations

import pytest

from apl.config import config_from_dict
from apl.errors import ConfigError
from apl.loop.components import build_components
from apl.loop.distributed import Cluster, launched_rank, start_cluster
from apl.policy.sharding import Shards

from .conftest import run_config


def test_a_rank_above_0_builds_no_oracle_opens_no_cache_and_writes_nothing(
    tiny_model_dir, tmp_path
):
    out, cache = tmp_path / "run", tmp_path / "cache"
    config = config_from_dict(run_config(tiny_model_dir, out))
    components = build_components(config, cache_dir=cache, shards=Shards(rank=1, world=2))
    try:
        assert components.oracle is None and components.judgement_cache is None
        assert components.train_prompts == [] == components.test_prompts  # rank 0 sends ids
        assert components.view.shards.rank == 1 and components.reference.shards.rank == 1
    finally:
        components.close()
    assert not cache.exists() and not out.exists()


class Target:
    """A stand-in for Components: records the calls `Cluster.call` makes on it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.reference = self

    def logps(self, *args):
        self.calls.append(("logps", args))
        return [1.0]

    def prompt_ids(self, texts):
        return [(1,)] * len(texts)


def test_one_process_cluster_calls_locally_and_never_communicates():
    target = Target()
    cluster = Cluster(target=target)
    assert cluster.is_main and cluster.world == 1
    assert cluster.call("reference", "logps", 1, 2) == [1.0]
    proxy = cluster.proxy("reference", "logps")
    assert proxy.logps(3) == [1.0] and proxy.prompt_ids(["a"]) == [(1,)]
    assert target.calls == [("logps", (1, 2)), ("logps", (3,))]
    assert cluster.share("x") == "x"
    cluster.stop(ConfigError("bad"))  # nobody to tell: no collective, no error


def test_launch_settings_the_loop_cannot_honour_fail_before_any_group(monkeypatch, tmp_path):
    config = config_from_dict(run_config(tmp_path, tmp_path / "run"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert launched_rank() == 1
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="--use_fsdp"):
        start_cluster(config)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="--use_deepspeed"):
        start_cluster(config)
    monkeypatch.delenv("WORLD_SIZE")
    assert launched_rank() == 0


class RecordingCluster(Cluster):
    """Rank 0 of 2 whose broadcasts are recorded instead of sent; the work itself runs here.

    One process stands in for the launch so that the test can read every message rank 0 would
    broadcast (the real 2-rank runs are in test_distributed_run.py).
    """

    sent: list = []

    @property
    def world(self) -> int:
        """Two processes, as far as the loop can tell."""
        return 2

    def _send(self, message):
        """Record the broadcast; nobody receives it."""
        self.sent.append(message)
        return message


def test_rank_0_sends_every_sampling_scoring_and_training_step_to_every_rank(
    tiny_model_dir, tmp_path, monkeypatch, judge_cache_dir
):
    """Entropy's Monte-Carlo samples, the pairs, evaluation, scoring and training are broadcast."""
    from apl.loop import runner

    monkeypatch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
    RecordingCluster.sent = []
    monkeypatch.setattr(runner, "start_cluster", lambda config: RecordingCluster())
    config = config_from_dict(
        run_config(
            tiny_model_dir,
            tmp_path / "run",
            acquisition={"name": "entropy", "num_samples": 4},
            loop={"label_budget": 16, "query_size": 8, "pool_size": 12},
            dpo={"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
            evaluation={"num_prompts": 6},
        )
    )
    runner.run(config, cache_dir=judge_cache_dir)
    sent = RecordingCluster.sent
    assert sent[0] == config and sent[-1] == ("stop", 0)  # rank 0's config first; stop last
    calls = [m[1:3] for m in sent[1:-1]]
    assert all(m[0] == "call" for m in sent[1:-1])
    samples = [
        (len(m[3][0]), m[3][2], m[3][3]) for m in sent[1:-1] if m[1:3] == ("view", "run_sample")
    ]  # (prompts, samples per prompt, temperature) of each sampling call
    assert samples.count((12, 4, 1.0)) == 2  # entropy's Monte-Carlo samples, each round
    assert samples.count((10, 2, 0.7)) == 2  # pairs for the kept prompts (8 + 25% reserve)
    assert samples.count((6, 1, 0.25)) == 3  # eval completions: the baseline's, then 2 rounds
    assert calls.count(("trainer", "train")) == 2
    assert ("view", "run_paired") in calls  # round 2: entropy annotates the kept pairs
