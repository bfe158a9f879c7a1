"""`generation.compile` None compiles decode steps only where a run samples past the break-even."""

from __future__ import annotations

import pytest
import torch

from apl.acquisition import ACQUISITIONS
from apl.config import load_config
from apl.loop.components import COMPILE_BREAK_EVEN, planned_completions, resolve_compile

CPU = torch.device("cpu")


def _plan(*overrides: str):
    config = load_config(None, list(overrides))
    return config, ACQUISITIONS.build(config.acquisition.name, config.acquisition.kwargs)


def test_planned_completions_count_pairs_estimates_and_evaluations():
    # default: certainty pairs every prompt of S=512, 8 rounds; 256 eval prompts x (8 + baseline)
    assert planned_completions(*_plan()) == 8 * 2 * 512 + 256 * 9
    # random keeps 64 + 25% reserve = 80 pairs per round
    assert planned_completions(*_plan("acquisition.name=random")) == 8 * 2 * 80 + 256 * 9
    # entropy: 8 samples for each of 512 prompts, then pairs for the 80 kept
    entropy = planned_completions(*_plan("acquisition.name=entropy"))
    assert entropy == 8 * (8 * 512 + 2 * 80) + 256 * 9
    waypoints = _plan("evaluation.waypoints=[128, 256]")
    assert planned_completions(*waypoints) == 8 * 2 * 512 + 256 * 4  # 2 + final + baseline


def test_default_run_compiles_where_a_compiler_is_present(monkeypatch):
    config, acquisition = _plan()
    assert planned_completions(config, acquisition) >= COMPILE_BREAK_EVEN
    monkeypatch.setenv("CXX", "g++")
    if not resolve_compile(config, acquisition, CPU):
        pytest.skip("no g++ on this machine")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert not resolve_compile(config, acquisition, CPU)


def test_short_runs_other_devices_and_explicit_choices(monkeypatch):
    monkeypatch.setenv("CXX", "sh")  # any executable stands in for a compiler here
    config, acquisition = _plan("acquisition.name=random")
    assert not resolve_compile(config, acquisition, CPU)  # 3,584 completions: not worth it
    assert resolve_compile(*_plan("acquisition.name=random", "generation.compile=true"), CPU)
    assert not resolve_compile(*_plan("generation.compile=false"), CPU)
    assert resolve_compile(*_plan(), CPU)
    assert not resolve_compile(*_plan(), torch.device("cuda"))  # untested there: opt-in
