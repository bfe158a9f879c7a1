"""RunTrackers with the real tracker libraries, offline: what each one stores, read back with it."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.errors import ConfigError
from apl.tracking import RunTrackers, check_trackers, flatten_params, resolve_report_to
from apl.tracking.run_trackers import STATE_FILE

from .readers import (
    mlflow_history,
    tensorboard_hparams,
    tensorboard_scalars,
    trackio_logs,
    wandb_runs,
)

ALL = ["tensorboard", "wandb", "mlflow", "trackio"]
PARAMS = flatten_params({"dpo": {"beta": 0.2, "max_steps": -1}, "model": {"lora": None}})


def record(round: int) -> dict[str, float]:
    """A round's metrics as the loop sends them."""
    return {
        "rewards/margins": 0.1 * round,
        "eval/win_rate": 0.5 + 0.1 * round,
        "spend/total_usd": 0.25 * round,
        "loop/round": float(round),
        "loop/labels": 8.0 * round,
    }


def open_trackers(directory, names=ALL, project="p"):
    return RunTrackers(names, directory / "trackers", project, "run-a", PARAMS)


def test_flatten_params_gives_dotted_scalars():
    assert flatten_params({"a": {"b": 1, "c": [1, 2], "d": None, "e": {"f": True}}}) == {
        "a.b": 1,
        "a.c": "[1, 2]",
        "a.d": "none",
        "a.e.f": True,
    }


@pytest.mark.slow
def test_every_tracker_stores_params_and_each_round_once(offline_trackers, tmp_path):
    project = f"apl-{tmp_path.name}"
    with open_trackers(tmp_path, project=project) as trackers:
        for round in (1, 2):
            trackers.send(round, record(round))
    # A resumed process: round 2 is not sent again, round 3 is; every tracker continues its run.
    with open_trackers(tmp_path, project=project) as trackers:
        assert trackers.unsent([1, 2, 3]) == [3]
        for round in (1, 2, 3):
            trackers.send(round, record(round))

    out = tmp_path / "trackers"
    scalars = tensorboard_scalars(out / "tensorboard" / "run-a")
    assert [s for s, _ in scalars["eval/win_rate"]] == [1, 2, 3]
    assert scalars["loop/labels"] == [(1, 8.0), (2, 16.0), (3, 24.0)]
    assert tensorboard_hparams(out / "tensorboard" / "run-a")["dpo.beta"] == pytest.approx(0.2)

    first, second = wandb_runs(out)
    assert first["run_id"] == second["run_id"] and first["project"] == project
    assert [(r["_step"], r["loop/labels"]) for r in first["history"]] == [(1, 8.0), (2, 16.0)]
    assert [r["_step"] for r in second["history"]] == [3]
    assert first["config"]["dpo.beta"] == 0.2 and first["config"]["model.lora"] == "none"
    assert ("*", "loop/labels") in first["metrics"]  # W&B plots against labels by default

    mlflow = mlflow_history(out / "mlruns", project)
    assert mlflow["history"]["rewards/margins"] == [
        (1, pytest.approx(0.1)),
        (2, pytest.approx(0.2)),
        (3, pytest.approx(0.3)),
    ]
    assert mlflow["params"]["dpo.beta"] == "0.2"
    state = json.loads((out / STATE_FILE).read_text())
    assert state["run_ids"]["mlflow"] == mlflow["run_id"]
    assert state["sent"] == {name: [1, 2, 3] for name in ALL}

    rows, config = trackio_logs(project, "run-a")
    assert [(r["step"], r["spend/total_usd"]) for r in rows] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    assert config["dpo.beta"] == 0.2 and "allow_val_change" not in config


def test_a_round_sent_but_not_recorded_is_replaced_in_tensorboard(offline_trackers, tmp_path):
    """A kill between TensorBoard's write and the state file's: simulated by removing round 2
    from the state file (the on-disk state such a kill leaves). The resend replaces it."""
    with open_trackers(tmp_path, ["tensorboard"]) as trackers:
        trackers.send(1, record(1))
        trackers.send(2, {**record(2), "eval/win_rate": 0.11})
    state_path = tmp_path / "trackers" / STATE_FILE
    state = json.loads(state_path.read_text())
    state["sent"]["tensorboard"] = [1]
    state_path.write_text(json.dumps(state))
    with open_trackers(tmp_path, ["tensorboard"]) as trackers:
        assert trackers.unsent([1, 2]) == [2]
        trackers.send(2, record(2))
    scalars = tensorboard_scalars(tmp_path / "trackers" / "tensorboard" / "run-a")
    assert scalars["eval/win_rate"] == [(1, pytest.approx(0.6)), (2, pytest.approx(0.7))]


def test_all_means_every_installed_tracker():
    assert resolve_report_to(["all"]) == ALL  # the test extra installs all four
    assert resolve_report_to(["wandb", "all"]) == ["wandb", "tensorboard", "mlflow", "trackio"]
    assert resolve_report_to([]) == []


def test_a_missing_tracker_package_names_the_extra(monkeypatch):
    """`sys.modules[name] = None` is how Python marks a module unimportable: find_spec says so."""
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"pip install 'apl\[wandb\]'"):
        check_trackers(["tensorboard", "wandb"])
    assert resolve_report_to(["all"]) == ["tensorboard", "mlflow", "trackio"]


def test_missing_tracker_is_one_line_at_config_time(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    result = CliRunner().invoke(app, ["config", "tracking.report_to=[tensorboard,mlflow]"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: tracking.report_to ('mlflow'): the mlflow package is not installed; install "
        "it with `pip install 'apl[mlflow]'` or drop 'mlflow'."
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tensorbord", "input should be 'tensorboard', 'wandb', 'mlflow', 'trackio' or 'all'"),
        ("[none,wandb]", "'none' cannot be combined with trackers"),
    ],
)
def test_bad_report_to_is_one_line(value, message):
    result = CliRunner().invoke(app, ["config", f"tracking.report_to={value}"])
    assert result.exit_code == 2 and message in result.output, result.output


def test_report_to_accepts_trl_spellings():
    runner = CliRunner()
    for value, shown in (("none", "report_to: []"), ("wandb", "- wandb")):
        result = runner.invoke(app, ["config", f"tracking.report_to={value}"])
        assert result.exit_code == 0 and shown in result.output, result.output
