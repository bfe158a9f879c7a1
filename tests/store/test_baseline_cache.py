"""Baseline completions cached across the runs of a sweep, keyed by what changes them."""

from __future__ import annotations

import json
import logging

import pytest

from apl.config import config_from_dict
from apl.errors import RunStoreError
from apl.store.baseline_cache import BaselineCache, baseline_identity
from apl.store.run_dir import open_run_dir
from apl.types import Completion

COMPLETIONS = {
    "u2": Completion(" fine film", (7, 8, 9), -3.25),
    "u1": Completion("", (), None),
    "u3": Completion(" ünïcode ✓", (1,), -0.5),
}


def identity(tmp_path, **sections):
    config = config_from_dict({"output_dir": str(tmp_path / "run"), **sections})
    return baseline_identity(config, model_fingerprint="sha256:abc")


def test_round_trip_keeps_order_and_values(tmp_path):
    cache = BaselineCache(tmp_path / "baselines")
    key = identity(tmp_path)
    assert cache.get(key) is None
    path = cache.put(key, COMPLETIONS)
    assert path.parent == tmp_path / "baselines" and path.exists()
    got = cache.get(key)
    assert got == COMPLETIONS and list(got) == list(COMPLETIONS)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_sweep_over_strategies_shares_one_baseline(tmp_path):
    cache = BaselineCache(tmp_path)
    cache.put(identity(tmp_path, acquisition={"name": "certainty"}), COMPLETIONS)
    same = identity(tmp_path, acquisition={"name": "random"}, dpo={"beta": 0.5}, output_dir="x")
    assert cache.get(same) == COMPLETIONS
    assert cache.get(identity(tmp_path, generation={"stop": []})) == COMPLETIONS  # the default


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"evaluation": {"temperature": 0.7}},
        {"evaluation": {"num_prompts": 64}},
        {"generation": {"max_new_tokens": 30}},
        {"model": {"model_name_or_path": "gpt2"}},
        {"model": {"bf16": True}},
        {"task": {"name": "tldr"}},
        {"generation": {"stop": ["\nUser:"]}},
    ],
)
def test_anything_that_changes_the_completions_is_a_miss(tmp_path, change):
    cache = BaselineCache(tmp_path)
    cache.put(identity(tmp_path), COMPLETIONS)
    assert cache.get(identity(tmp_path, **change)) is None


def test_another_model_fingerprint_is_a_miss(tmp_path):
    config = config_from_dict({"output_dir": str(tmp_path)})
    cache = BaselineCache(tmp_path)
    cache.put(baseline_identity(config, "sha256:abc"), COMPLETIONS)
    assert cache.get(baseline_identity(config, "sha256:def")) is None
    assert cache.get(baseline_identity(config, "sha256:abc", split="validation")) is None


def test_unreadable_or_mismatched_files_are_misses(tmp_path, caplog):
    cache = BaselineCache(tmp_path)
    key, other = identity(tmp_path), identity(tmp_path, seed=5)
    cache.path_for(key).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text
    # A file under this key that records another identity (a collision) is not trusted.
    cache.put(other, COMPLETIONS)
    cache.path_for(key).write_text(cache.path_for(other).read_text())
    assert cache.get(key) is None
    assert json.loads(cache.path_for(other).read_text())["identity"]["seed"] == 5


def test_run_dirs_of_a_sweep_share_the_baselines_dir(tmp_path):
    a = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "sweep" / "random-0")}))
    b = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "sweep" / "certainty-0")}))
    assert a.baselines_dir == b.baselines_dir == (tmp_path / "sweep" / "baselines").resolve()


def test_an_unwritable_cache_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunStoreError) as err:
        BaselineCache(blocker / "baselines").put(identity(tmp_path), COMPLETIONS)
    assert "baseline cache" in str(err.value) and "\n" not in str(err.value)
