"""`apl run` end to end on the tiny model with the offline judge: 2 rounds, outputs, status, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.store.run_dir import load_run_dir

from .conftest import run_config, subprocess_env, write_config


@pytest.fixture()
def finished_run(tmp_path, tiny_model_dir, monkeypatch, judge_cache_dir):
    """A completed 2-round `apl run`, invoked through typer's CliRunner."""
    monkeypatch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
    out = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", run_config(tiny_model_dir, out))
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_two_rounds_produce_labels_metrics_and_model(finished_run):
    out, output = finished_run
    directory = load_run_dir(out)
    with directory.open_ledger() as ledger:
        assert ledger.rounds() == {1: "evaluated", 2: "evaluated"}
        labelled = ledger.labelled()
        metrics = ledger.metrics()
    assert len(labelled) == 16
    assert {lp.round for lp in labelled} == {1, 2}
    assert len({lp.preference.prompt.uid for lp in labelled}) == 16  # fresh prompts every round
    for round in (1, 2):
        assert 0.0 <= metrics[round]["eval/win_rate"] <= 1.0
        assert metrics[round]["eval/num_judged"] + metrics[round]["eval/invalid"] == 12
        assert "rewards/accuracies" in metrics[round]
    rows = [
        json.loads(line) for line in (out / "export" / "preferences.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 16 and set(rows[0]) >= {"prompt", "chosen", "rejected"}
    assert (out / "final_model" / "config.json").is_file()
    assert "win-rate" in output  # the summary table


def test_status_and_resume_of_a_finished_run(finished_run):
    out, _ = finished_run
    runner = CliRunner()
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0, status.output
    assert "2 / 2" in status.output and "16 usable" in status.output
    with load_run_dir(out).open_ledger() as ledger:
        before = ledger.spend()
    again = runner.invoke(app, ["resume", str(out)])  # nothing left to do: no new verdicts
    assert again.exit_code == 0, again.output
    with load_run_dir(out).open_ledger() as ledger:
        assert ledger.spend() == before


def test_rerun_with_a_different_config_is_refused(finished_run, tmp_path, tiny_model_dir):
    out, _ = finished_run
    config = run_config(tiny_model_dir, out, seed=6)
    result = CliRunner().invoke(
        app, ["run", "--config", str(write_config(tmp_path / "b.yaml", config))]
    )
    assert result.exit_code == 2
    assert "belongs to a different config: seed is 5 there, 6 here" in result.output


def test_resume_refuses_to_change_what_is_computed(finished_run):
    out, _ = finished_run
    result = CliRunner().invoke(app, ["resume", str(out), "dpo.beta=0.5"])
    assert result.exit_code == 2
    assert "cannot change 'dpo.beta'" in result.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["acquisition.name=coreset"],
            "Unknown acquisition 'coreset'. Available: adpo, bald, balpm, certainty, entropy, hybrid, random.",
        ),
        (["oracle.name=gpt"], "Unknown oracle 'gpt'."),
        (["task.name=squad"], "Unknown task 'squad'."),
        (["loop.query_size=64", "loop.pool_size=32"], "query_size (64) > pool_size (32)"),
        (["loop.label_budget=4"], "label_budget (4) < query_size (64)"),
        (["model.model_name_or_path=/nonexistent/model"], "/nonexistent/model"),
        (["oracle.name=openai_judge", "oracle.api_key_env=APL_NO_SUCH_KEY"], "APL_NO_SUCH_KEY"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, overrides, message, monkeypatch):
    monkeypatch.delenv("APL_NO_SUCH_KEY", raising=False)
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", f"output_dir={out}", *overrides])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert not out.exists()  # a failed start leaves nothing that would block the fixed rerun


def test_bad_input_from_a_real_process(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "apl",
            "run",
            "acquisition.name=coreset",
            f"output_dir={tmp_path}/r",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path / "cache"),
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: Unknown acquisition 'coreset'. Available: adpo, bald, balpm, certainty, entropy, hybrid, random."
    ]


def test_refuses_to_run_under_a_multi_process_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["run", f"output_dir={tmp_path / 'run'}"])
    assert result.exit_code == 2
    assert "WORLD_SIZE is 2" in result.output and not (tmp_path / "run").exists()
