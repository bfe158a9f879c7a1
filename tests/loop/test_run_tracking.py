"""`apl run` reporting to real trackers (TensorBoard, W&B offline, MLflow file store), and resume."""

from __future__ import annotations

import pytest
from tracking.readers import mlflow_history, tensorboard_scalars, wandb_runs
from typer.testing import CliRunner

from apl.cli import app
from apl.store.run_dir import load_run_dir

from .conftest import run_config, write_config


@pytest.mark.slow
def test_run_reports_every_ledger_metric_and_resume_backfills_a_new_tracker(
    tmp_path, tiny_model_dir, monkeypatch, judge_cache_dir
):
    monkeypatch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # restored after; apl sets it too
    out = tmp_path / "run"
    config = run_config(
        tiny_model_dir, out, tracking={"report_to": ["tensorboard", "wandb"], "project": "t"}
    )
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--config", str(write_config(tmp_path / "r.yaml", config))])
    assert result.exit_code == 0, result.output
    with load_run_dir(out).open_ledger() as ledger:
        metrics = ledger.metrics()
        label_usd = ledger.spend().label_usd

    scalars = tensorboard_scalars(out / "trackers" / "tensorboard" / "run")
    for key in ("rewards/margins", "train/loss", "eval/win_rate", "label/total", "time/train"):
        assert scalars[key] == [(r, pytest.approx(metrics[r][key])) for r in (1, 2)], key
    assert scalars["loop/labels"] == [(1, 8.0), (2, 16.0)]
    assert scalars["loop/round"] == [(1, 1.0), (2, 2.0)]
    assert scalars["spend/label_usd"][-1][1] == pytest.approx(label_usd)  # $0: offline judge
    assert scalars["spend/cache_hits"][-1][1] + scalars["spend/oracle_calls"][-1][1] > 0

    (run,) = wandb_runs(out / "trackers")
    assert run["name"] == "run" and run["project"] == "t"
    assert [row["_step"] for row in run["history"]] == [1, 2]
    assert run["history"][1]["eval/win_rate"] == pytest.approx(metrics[2]["eval/win_rate"])
    assert run["config"]["loop.query_size"] == 8 and run["config"]["oracle.name"] == "imdb_judge"

    # Add MLflow on resume: it gets both finished rounds; TensorBoard is not sent them again.
    again = runner.invoke(app, ["resume", str(out), "tracking.report_to=[tensorboard,mlflow]"])
    assert again.exit_code == 0, again.output
    mlflow = mlflow_history(out / "trackers" / "mlruns", "t")
    assert [step for step, _ in mlflow["history"]["eval/win_rate"]] == [1, 2]
    assert mlflow["params"]["tracking.report_to"] == '["tensorboard", "mlflow"]'  # as resumed
    assert tensorboard_scalars(out / "trackers" / "tensorboard" / "run")["loop/labels"] == [
        (1, 8.0),
        (2, 16.0),
    ]
