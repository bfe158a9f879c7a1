"""Cards from plain RunFacts: public names, Hub metadata, and no machine path anywhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from apl.cards import (
    RunFacts,
    dataset_card_text,
    model_card_text,
    public_config,
    public_name,
)
from apl.cards.facts import RoundResult
from apl.config import config_from_dict

from .helpers import machine_paths


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("builtin:imdb-gpt2", "builtin:imdb-gpt2"),
        ("gpt2", "gpt2"),
        ("org/reward-model", "org/reward-model"),
        ("/srv/models/my-rm", "my-rm"),
        ("~/models/policy", "policy"),
        ("./checkpoints/final", "final"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
    ],
)
def test_public_name_keeps_hub_names_and_reduces_paths(value, shown):
    assert public_name(value) == shown


def test_an_existing_relative_directory_is_a_path(tmp_path, monkeypatch):
    (tmp_path / "org" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert public_name("org/model") == "model"  # transformers would load the directory


def test_public_config_has_no_machine_path(tmp_path):
    config = config_from_dict(
        {
            "task": {"name": "custom", "path": str(tmp_path / "pool.jsonl")},
            "model": {"model_name_or_path": str(tmp_path / "policy")},
            "oracle": {"name": "imdb_judge", "cache_dir": str(Path.home() / ".cache" / "apl")},
            "output_dir": str(tmp_path / "runs" / "r1"),
        }
    )
    shown = public_config(config, "r1")
    assert shown["task"]["path"] == "pool.jsonl"
    assert shown["model"]["model_name_or_path"] == "policy"
    assert shown["oracle"]["cache_dir"] == "apl" and shown["output_dir"] == "r1"
    assert machine_paths(str(shown)) == []
    assert config_from_dict(shown).seed == config.seed  # still a valid config


def facts(**changes) -> RunFacts:
    """RunFacts for a finished 3-round run on the shipped model."""
    config = public_config(config_from_dict({}), "imdb-certainty-seed0")
    base = RunFacts(
        run_name="imdb-certainty-seed0",
        config=config,
        base_model="builtin:imdb-gpt2",
        base_model_on_hub=False,
        base_model_fingerprint="local:0123456789abcdef",
        lora=False,
        task="imdb",
        task_dataset=None,
        task_source="IMDB reviews",
        acquisition="certainty",
        acquisition_options={"name": "certainty"},
        oracle="imdb_judge",
        judge_ids=["imdb_judge:v2|rep=1|T=0"],
        baseline="initial",
        num_rounds=3,
        rounds_done=3,
        label_budget=192,
        query_size=64,
        pool_size=512,
        verdicts={"A": 100, "B": 92, "tie": 3, "invalid": 1},
        labels=192,
        label_usd=1.5,
        eval_usd=0.25,
        oracle_calls=700,
        cache_hits=12,
        rounds=[
            RoundResult(1, 64, 0.61, 0.03, 256),
            RoundResult(2, 128, None, None, None),
            RoundResult(3, 192, 0.8125, 0.0244, 256),
        ],
        dpo=config["dpo"],
        generation=config["generation"],
        evaluation=config["evaluation"],
        seed=0,
        versions={"apl": "0.1.0"},
    )
    return dataclasses.replace(base, **changes)


def test_model_card_for_the_shipped_model():
    text = model_card_text(facts())
    card = ModelCard(text)
    assert card.data.base_model is None  # `builtin:` is not a hub repo id
    assert card.data.library_name == "transformers"
    assert card.data.apl["base_model"] == "builtin:imdb-gpt2"
    assert card.data.apl["win_rate"] == 0.8125 and card.data.apl["win_rate_stderr"] == 0.0244
    assert card.data.apl["spend_usd"] == 1.75 and card.data.apl["labels"] == 192
    assert card.data.eval_results[0].metric_value == 0.8125
    assert "`builtin:imdb-gpt2` (shipped with apl" in text
    assert "Final win-rate **0.812 ± 0.024**" in text
    assert "| 2 | 128 |" not in text  # only evaluated rounds in the results table
    assert "$1.5000 on labels + $0.2500 on evaluation" in text


def test_model_card_names_a_hub_base_model_and_its_dataset():
    card = ModelCard(
        model_card_text(
            facts(
                base_model="Qwen/Qwen2.5-0.5B",
                base_model_on_hub=True,
                base_model_fingerprint=None,
                lora=True,
                task="tldr",
                task_dataset="CarperAI/openai_summarize_tldr",
            )
        )
    )
    assert card.data.base_model == "Qwen/Qwen2.5-0.5B"
    assert card.data.library_name == "peft"
    assert card.data.datasets == ["CarperAI/openai_summarize_tldr"]


def test_model_card_before_any_evaluation():
    rounds = [RoundResult(1, 64, None, None, None)]
    card = ModelCard(model_card_text(facts(rounds=rounds)))
    assert card.data.eval_results is None and card.data.apl["win_rate"] is None
    assert "Not evaluated yet." in card.text


def test_dataset_card_counts_verdicts_and_points_at_the_data():
    text = dataset_card_text(facts(), num_rows=192)
    card = DatasetCard(text)
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "preferences.jsonl"}]}
    ]
    assert card.data.size_categories == ["n<1K"] and card.data.language == ["en"]
    assert card.data.apl["verdicts"] == {"A": 100, "B": 92, "tie": 3, "invalid": 1}
    for line in ("| A | 100 |", "| tie | 3 |", "| `chosen` | string |", "M = 64", "S = 512"):
        assert line in text
    assert machine_paths(text) == [] and machine_paths(model_card_text(facts())) == []


def test_lora_usage_over_the_builtin_base_loads_on_another_machine(tmp_path):
    """The card's snippet loads a real adapter whose recorded base path no longer exists."""
    import json
    import re

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from apl.policy.model import resolve_model_path

    path = resolve_model_path("builtin:imdb-gpt2")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(path),
        LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"),
    )
    final = tmp_path / "final_model"
    model.save_pretrained(final)
    AutoTokenizer.from_pretrained(path).save_pretrained(final)
    config_file = final / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = "/elsewhere/site-packages/apl/assets/imdb-gpt2"
    config_file.write_text(json.dumps(config))

    text = model_card_text(facts(lora=True))
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(code.replace('"final_model"', repr(str(final))), scope)
    assert type(scope["model"]).__name__ == "PeftModelForCausalLM"
    assert scope["tokenizer"]("a good film")["input_ids"]
    assert machine_paths(text) == []
