"""Evaluation setup refuses what would silently bias the win-rate: prompts without references."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.config import config_from_dict
from apl.errors import ConfigError
from apl.loop.evaluating import baseline_kind
from apl.types import Prompt

from .conftest import run_config, write_config


def _prompts(with_reference: int, without: int) -> list[Prompt]:
    return [Prompt(f"r{i}", "post", reference="a summary") for i in range(with_reference)] + [
        Prompt(f"n{i}", "post") for i in range(without)
    ]


@pytest.mark.parametrize(
    ("baseline", "task_baseline", "start"),
    [
        ("reference", "initial", "evaluation.baseline is 'reference', but 2 of the 5"),
        (
            "auto",
            "reference",
            "task 'tldr' evaluates against references (evaluation.baseline auto)",
        ),
    ],
)
def test_every_eval_prompt_needs_a_reference(baseline, task_baseline, start):
    config = config_from_dict({"evaluation": {"baseline": baseline}})
    with pytest.raises(ConfigError) as info:
        baseline_kind(config, "tldr", task_baseline, _prompts(3, 2))
    message = str(info.value)
    assert message.startswith(start) and "\n" not in message
    assert "set evaluation.baseline=initial" in message
    assert baseline_kind(config, "tldr", task_baseline, _prompts(5, 0)) == "reference"


def test_initial_baseline_needs_no_reference():
    config = config_from_dict({"evaluation": {"baseline": "initial"}})
    assert baseline_kind(config, "imdb", "initial", _prompts(0, 3)) == "initial"


def test_reference_baseline_on_a_pool_without_references_fails_before_the_run_exists(
    tmp_path, tiny_model_dir, monkeypatch, judge_cache_dir
):
    monkeypatch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
    out = tmp_path / "run"
    config = run_config(
        tiny_model_dir, out, evaluation={"num_prompts": 12, "baseline": "reference"}
    )
    result = CliRunner().invoke(
        app, ["run", "--config", str(write_config(tmp_path / "c.yaml", config))]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: evaluation.baseline is 'reference', but 12 of the 12 eval prompts have no "
        "reference completion; give every prompt a reference (e.g. task.reference_column) or "
        "set evaluation.baseline=initial."
    ]
    assert not out.exists()
