"""`apl pretrain` through typer's CliRunner: a tiny real run, and one-line errors."""

from __future__ import annotations

import json

from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from apl.cli import app

runner = CliRunner()


def test_cli_pretrains_a_tiny_model_that_loads_like_a_hub_model(tmp_path):
    out = tmp_path / "m"
    args = [
        "pretrain", "--output-dir", str(out), "--max-train-reviews", "100", "--vocab-size", "300",
        "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--n-positions", "32",
        "--max-steps", "3", "--batch-size", "4", "--eval-every", "1", "--no-bf16",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"saved {out}: val loss" in result.output
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.n_layer == 1 and model.config.n_positions == 32
    assert len(AutoTokenizer.from_pretrained(out)) == 300
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert summary["config"]["bf16"] is False and summary["config"]["max_steps"] == 3
    assert len((out / "loss_log.csv").read_text().splitlines()) == 1 + 4  # header + steps 0..3


def test_cli_bad_option_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["pretrain", "--output-dir", str(tmp_path), "--max-steps", "0"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: --max-steps (0): Input should be greater than or equal to 1; "
                     "pass a valid value."]  # fmt: skip
    assert not any(tmp_path.iterdir())
