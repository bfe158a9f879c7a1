"""A LoRA run judged by a reward model apl trained: its verdicts, and its Hub model/dataset cards."""

from __future__ import annotations

import re

import pytest
import yaml
from cards.helpers import machine_paths
from typer.testing import CliRunner

from apl.cli import app
from apl.config import config_from_dict
from apl.store.run_dir import load_run_dir
from apl.types import Verdict

from .conftest import run_config, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, tiny_reward_model_dir, judge_cache_dir):
    """A finished 2-round `apl run` with a LoRA policy and the reward_model judge."""
    tmp = tmp_path_factory.mktemp("cards")
    out = tmp / "lora-run"
    config = run_config(
        tiny_model_dir,
        out,
        model={"model_name_or_path": str(tiny_model_dir), "bf16": False, "lora": {"r": 4}},
        oracle={"name": "reward_model", "model_name_or_path": str(tiny_reward_model_dir)},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
        result = CliRunner().invoke(
            app, ["run", "--config", str(write_config(tmp / "run.yaml", config))]
        )
    assert result.exit_code == 0, result.output
    return out


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
