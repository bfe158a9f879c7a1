"""The CLI surface: --help on every command, `apl config`, the positional YAML argument."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from apl.cli import app

COMMANDS = [
    [],
    ["run"],
    ["resume"],
    ["status"],
    ["export"],
    ["config"],
    ["sweep"],
    ["report"],
    ["pretrain"],
    ["judge"],
    ["judge", "consistency"],
    ["judge", "label"],
    ["label"],
    ["label", "serve"],
    ["label", "add-annotator"],
    ["label", "export"],
    ["label", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "apl")
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_console_script_help_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "apl", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for name in ("run", "resume", "status", "sweep", "report", "pretrain", "judge"):
        assert name in proc.stdout


def test_config_prints_the_resolved_yaml_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loop:\n  query_size: 32\n  pool_size: 64\n")
    result = CliRunner().invoke(app, ["config", str(path), "seed=3", "dpo.beta=0.1"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["loop"]["query_size"] == 32
    assert resolved["seed"] == 3 and resolved["dpo"]["beta"] == 0.1
    assert resolved["output_dir"] == "runs/imdb-certainty-seed3"  # placeholders filled


def test_config_checks_registry_options():
    result = CliRunner().invoke(
        app, ["config", "acquisition.name=entropy", "acquisition.samples=4"]
    )
    assert result.exit_code == 2
    assert "acquisition 'entropy' has no option 'samples'" in result.output


def test_two_configs_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n")
    result = CliRunner().invoke(app, ["config", str(path), "--config", str(path)])
    assert result.exit_code != 0
    assert "two configs given" in result.output
