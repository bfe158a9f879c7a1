"""Read each tracker's output back with that tracker's own library (W&B: wandb_reader.py)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from .wandb_reader import read_wandb_run


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in a TensorBoard run directory: [(step, value)] as TensorBoard shows it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))  # purge_orphaned_data=True: honours purge_step
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def tensorboard_hparams(logdir: Path) -> dict[str, Any]:
    """The hyperparameters stored with add_hparams in a run directory's sub-runs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    found: dict[str, Any] = {}
    for sub in sorted(p for p in logdir.iterdir() if p.is_dir()):
        events = EventAccumulator(str(sub))
        events.Reload()
        try:
            contents = events.PluginTagToContent("hparams")
        except KeyError:
            continue  # accelerate's sibling folder holding hparams.yml
        for content in contents.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                for key, value in data.session_start_info.hparams.items():
                    kind = value.WhichOneof("kind")
                    found[key] = getattr(value, kind)
    return found


def wandb_runs(directory: Path) -> list[dict[str, Any]]:
    """Every offline W&B run file under `directory`, oldest first."""
    files = glob.glob(str(directory / "wandb" / "offline-run-*" / "run-*.wandb"))
    return [read_wandb_run(Path(f)) for f in sorted(files, key=_wandb_run_order)]


def _wandb_run_order(path: str) -> tuple[str, int]:
    """A run directory's start second, then W&B's "-N" suffix for a run that resumed within the
    same second (plain string order would put "<id>-1" before "<id>")."""
    folder = Path(path).parent.name  # offline-run-<YYYYmmdd_HHMMSS>-<run id>[-<N>]
    _, _, stamp, *rest = folder.split("-")
    return stamp, int(rest[1]) if len(rest) > 1 else 0


def mlflow_history(tracking_dir: Path, experiment: str) -> dict[str, Any]:
    """The one MLflow run of `experiment` in a file store: id, params and metric histories."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_dir.resolve().as_uri())
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in run.data.metrics
    }
    return {"run_id": run.info.run_id, "params": run.data.params, "history": history}


def trackio_logs(project: str, run_name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """trackio's stored rows and config for one run (reads $TRACKIO_DIR)."""
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_logs(project, run_name), SQLiteStorage.get_run_config(
        project, run_name
    )
