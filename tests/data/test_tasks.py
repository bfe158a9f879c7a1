"""The TASKS registry, fresh-prompt sampling, the hash split and the example configs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from apl.config import load_config
from apl.data import TASKS, sample_prompts
from apl.data.tasks import hash_split, text_uid
from apl.errors import ConfigError, DataError
from apl.types import Prompt

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
POOL = [Prompt(uid=f"p{i}", text=f"prompt {i}") for i in range(50)]


def test_sampling_gives_distinct_fresh_prompts_reproducibly():
    used = {f"p{i}" for i in range(0, 50, 2)}
    picked = sample_prompts(POOL, 20, np.random.default_rng(3), exclude_uids=used)
    assert len({p.uid for p in picked}) == 20 and not {p.uid for p in picked} & used
    assert picked == sample_prompts(POOL, 20, np.random.default_rng(3), exclude_uids=used)
    assert picked != sample_prompts(POOL, 20, np.random.default_rng(4), exclude_uids=used)
    assert sample_prompts(POOL, 5, random.Random(1)) == sample_prompts(POOL, 5, random.Random(1))
    assert sample_prompts(POOL, 5, 7) == sample_prompts(POOL, 5, np.random.default_rng(7))
    assert sample_prompts(POOL, 0, 0) == []
    everything = sample_prompts(POOL, 50, 0)
    assert sorted(p.uid for p in everything) == sorted(p.uid for p in POOL)


def test_sampling_every_prompt_is_equally_likely():
    rng = np.random.default_rng(0)
    counts = np.zeros(50)
    for _ in range(400):
        for p in sample_prompts(POOL, 5, rng):
            counts[int(p.uid[1:])] += 1
    assert counts.min() > 20 and counts.max() < 65  # expected 40 each


def test_asking_for_more_than_is_left_names_option_sizes_and_pool():
    used = {f"p{i}" for i in range(10)}
    with pytest.raises(DataError) as err:
        sample_prompts(POOL, 4000, 0, exclude_uids=used, option="pool_size", pool="imdb/train")
    assert str(err.value) == "`pool_size` (4000) > unlabelled prompts (40) in imdb/train; lower it."
    with pytest.raises(DataError, match=r"`n` \(51\) > prompts \(50\)"):
        sample_prompts(POOL, 51, 0)
    with pytest.raises(DataError, match=r"`n` \(-1\) is negative"):
        sample_prompts(POOL, -1, 0)


def test_registry_lists_the_tasks_and_rejects_unknown_names():
    assert TASKS.names() == ["custom", "imdb", "tldr"]
    with pytest.raises(ConfigError, match=r"Unknown task 'imbd'. Available: custom, imdb, tldr."):
        TASKS.build("imbd")


def test_hash_split_and_uids_depend_on_the_text_only():
    texts = [f"some prompt number {i}" for i in range(4000)]
    splits = [hash_split(t, 0.1) for t in texts]
    assert splits == [hash_split(t, 0.1) for t in texts]
    assert 0.08 < splits.count("test") / len(texts) < 0.12
    assert all(hash_split(t, 0.0) == "train" for t in texts[:100])
    assert text_uid("x", "hello") == text_uid("x", "hello") != text_uid("x", "hello!")


@pytest.mark.parametrize("name", ["tldr.yaml", "custom_example.yaml"])
def test_example_configs_are_valid(name):
    config = load_config(CONFIGS / name)
    task = TASKS.build(config.task.name, config.task.kwargs)
    assert task.name.split(":")[0] == name.split("_")[0].removesuffix(".yaml")
