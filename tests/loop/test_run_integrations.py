"""One real `apl run` with the integrations a team plugs in: a LoRA policy judged by a reward
model apl trained, reporting to TensorBoard and W&B (offline). Checked: the judge's verdicts,
every ledger metric in both trackers, the Hub model and dataset cards, and a resume that adds
MLflow (last: it changes the run's stored tracking options)."""

from __future__ import annotations

import re

import pytest
import yaml
from cards.helpers import machine_paths
from tracking.readers import mlflow_history, tensorboard_scalars, wandb_runs
from typer.testing import CliRunner

from apl.cli import app
from apl.config import config_from_dict
from apl.store.run_dir import load_run_dir
from apl.types import Verdict

from .conftest import run_config, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, tiny_reward_model_dir, judge_cache_dir):
    """A finished 2-round `apl run`: LoRA policy, reward_model judge, TensorBoard + W&B."""
    tmp = tmp_path_factory.mktemp("cards")
    out = tmp / "lora-run"
    config = run_config(
        tiny_model_dir,
        out,
        model={"model_name_or_path": str(tiny_model_dir), "bf16": False, "lora": {"r": 4}},
        oracle={"name": "reward_model", "model_name_or_path": str(tiny_reward_model_dir)},
        tracking={"report_to": ["tensorboard", "wandb"], "project": "t"},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
        tracker_env(patch)
        result = CliRunner().invoke(
            app, ["run", "--config", str(write_config(tmp / "run.yaml", config))]
        )
    assert result.exit_code == 0, result.output
    return out


def tracker_env(patch: pytest.MonkeyPatch) -> None:
    """W&B offline; MLflow at apl's default file store (the flag apl sets, restored after)."""
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_SILENT", "true")
    patch.delenv("WANDB_DIR", raising=False)
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_the_reward_model_judged_labels_and_evaluation(lora_run):
    with load_run_dir(lora_run).open_ledger() as ledger:
        judgements = [j for r in (1, 2) for j in ledger.verdicts(r).values()]
        metrics = ledger.metrics()
    assert {j.judge_id.split("|")[0] for j in judgements} == {judgements[0].judge_id.split("|")[0]}
    assert judgements[0].judge_id.startswith("reward_model:local:")
    assert sum(j.verdict in (Verdict.A, Verdict.B) for j in judgements) == 16
    assert 0.0 <= metrics[2]["eval/win_rate"] <= 1.0


def test_model_card_loads_with_hub_metadata_and_no_machine_path(lora_run, tiny_model_dir):
    from huggingface_hub import ModelCard
    from peft import AutoPeftModelForCausalLM

    with load_run_dir(lora_run).open_ledger() as ledger:
        final = ledger.metrics()[2]
        judge_id = next(iter(ledger.verdicts(1).values())).judge_id
    card_path = lora_run / "final_model" / "README.md"
    card = ModelCard.load(card_path)
    data = card.data
    assert data.library_name == "peft" and data.pipeline_tag == "text-generation"
    assert {"apl", "dpo", "certainty"} <= set(data.tags)
    assert data.base_model is None  # a local model is not a hub repo
    assert data.apl["base_model"] == tiny_model_dir.name
    assert data.apl["base_model_fingerprint"].startswith("local:")
    assert data.apl["labels"] == 16 and data.apl["acquisition"] == "certainty"
    assert data.apl["oracle"] == "reward_model" and data.apl["judge_id"] == judge_id
    assert data.apl["win_rate"] == pytest.approx(final["eval/win_rate"])
    assert data.apl["win_rate_stderr"] == pytest.approx(final["eval/win_rate_stderr"])
    (result,) = data.eval_results
    assert result.metric_type == "win_rate"
    assert result.metric_value == pytest.approx(final["eval/win_rate"], abs=1e-4)
    text = card_path.read_text()
    assert "PEFT" not in text.split("---", 2)[2][:200]  # not PEFT's template
    assert f"{final['eval/win_rate']:.3f} ± {final['eval/win_rate_stderr']:.3f}" in text
    assert "`apl run config.yaml`" in text
    assert machine_paths(text) == []
    # The embedded config is a valid apl config for the same run, paths reduced to names.
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    shown = config_from_dict(yaml.safe_load(block))
    assert shown.model.model_name_or_path == tiny_model_dir.name
    assert shown.output_dir == "lora-run" and shown.dpo.beta == 0.2
    model = AutoPeftModelForCausalLM.from_pretrained(lora_run / "final_model")
    assert model.peft_config["default"].r == 4


def test_dataset_card_loads_with_the_data_and_no_machine_path(lora_run):
    import datasets
    from huggingface_hub import DatasetCard

    export = lora_run / "export"
    card = DatasetCard.load(export / "README.md")
    with load_run_dir(lora_run).open_ledger() as ledger:
        counts: dict[str, int] = {}
        for r in (1, 2):
            for j in ledger.verdicts(r).values():
                counts[j.verdict.value] = counts.get(j.verdict.value, 0) + 1
    assert card.data.apl["verdicts"] == counts
    assert card.data.apl["query_size"] == 8 and card.data.apl["pool_size"] == 24
    assert card.data.size_categories == ["n<1K"] and "dpo" in card.data.tags
    assert machine_paths((export / "README.md").read_text()) == []
    # The Hub reads the card's `configs` to find the data; so does `datasets` locally.
    hub_view = datasets.load_dataset(str(export), split="train")
    on_disk = datasets.load_from_disk(str(export / "preferences_dataset"))
    assert hub_view.num_rows == on_disk.num_rows == 16
    assert {"prompt", "chosen", "rejected"} <= set(hub_view.column_names)


def test_apl_export_writes_both_cards_again(lora_run, tmp_path):
    (lora_run / "final_model" / "README.md").write_text("stale")
    result = CliRunner().invoke(app, ["export", str(lora_run), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "apl:" in (tmp_path / "x" / "README.md").read_text()
    assert "apl:" in (lora_run / "final_model" / "README.md").read_text()


def test_trackers_got_every_ledger_metric_with_both_steps(lora_run):
    out = lora_run
    with load_run_dir(out).open_ledger() as ledger:
        metrics = ledger.metrics()
        label_usd = ledger.spend().label_usd

    scalars = tensorboard_scalars(out / "trackers" / "tensorboard" / "lora-run")
    for key in ("rewards/margins", "train/loss", "eval/win_rate", "label/total", "time/train"):
        assert scalars[key] == [(r, pytest.approx(metrics[r][key])) for r in (1, 2)], key
    assert scalars["loop/labels"] == [(1, 8.0), (2, 16.0)]
    assert scalars["loop/round"] == [(1, 1.0), (2, 2.0)]
    assert scalars["spend/label_usd"][-1][1] == pytest.approx(label_usd)  # $0: a local judge
    assert scalars["spend/cache_hits"][-1][1] + scalars["spend/oracle_calls"][-1][1] > 0

    (run,) = wandb_runs(out / "trackers")
    assert run["name"] == "lora-run" and run["project"] == "t"
    assert [row["_step"] for row in run["history"]] == [1, 2]
    assert run["history"][1]["eval/win_rate"] == pytest.approx(metrics[2]["eval/win_rate"])
    assert run["config"]["loop.query_size"] == 8 and run["config"]["oracle.name"] == "reward_model"


def test_resume_adds_a_tracker_and_backfills_it_without_resending(lora_run, monkeypatch):
    out = lora_run
    tracker_env(monkeypatch)
    runner = CliRunner()
    # Add MLflow on resume: it gets both finished rounds; TensorBoard is not sent them again.
    again = runner.invoke(app, ["resume", str(out), "tracking.report_to=[tensorboard,mlflow]"])
    assert again.exit_code == 0, again.output
    mlflow = mlflow_history(out / "trackers" / "mlruns", "t")
    assert [step for step, _ in mlflow["history"]["eval/win_rate"]] == [1, 2]
    assert mlflow["params"]["tracking.report_to"] == '["tensorboard", "mlflow"]'  # as resumed
    assert tensorboard_scalars(out / "trackers" / "tensorboard" / "lora-run")["loop/labels"] == [
        (1, 8.0),
        (2, 16.0),
    ]
