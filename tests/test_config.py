"""Config loading: YAML, overrides, and one-line errors that name the option."""

from __future__ import annotations

import pytest

from apl.config import APLConfig, dump_config, load_config
from apl.errors import ConfigError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loop:\n  query_size: 32\nacquisition:\n  name: entropy\n  num_samples: 4\n")
    config = load_config(path, ["dpo.beta=0.1", "loop.label_budget=96"])
    assert config.loop.query_size == 32
    assert config.loop.num_rounds == 3
    assert config.dpo.beta == 0.1
    assert config.acquisition.name == "entropy"
    assert config.acquisition.kwargs == {"num_samples": 4}


def test_dump_round_trips(tmp_path):
    config = load_config(None, ["seed=7"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert isinstance(config, APLConfig)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["loop.query_size=1000"], "query_size (1000) > pool_size"),
        (["loop.label_budget=8"], "label_budget (8) < query_size"),
        (["dpo.betaa=0.1"], "unknown option 'dpo.betaa'"),
        (["dpo.beta=-1"], "dpo.beta (-1)"),
        (["novalue"], "has no '='"),
        (["generation.min_new_tokens=30"], "min_new_tokens (30) > max_new_tokens"),
        (
            ["evaluation.waypoints=[64, 100]"],
            ": evaluation.waypoints ([64, 100]): 100 is never reached; rounds end at "
            "64, 128, 192, ..., 512 labels (multiples of loop.query_size 64 up to "
            "loop.label_budget 512)",
        ),
        (
            ["evaluation.waypoints=[64, 576, 1024]", "loop.label_budget=200"],
            "576, 1024 are never reached; rounds end at 64, 128, 192 labels",
        ),
    ],
)
def test_bad_values_are_one_line_errors(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_waypoints_that_rounds_reach_load():
    config = load_config(None, ["evaluation.waypoints=[128, 512]"])
    assert config.evaluation.waypoints == [128, 512]


def test_chat_example_config_loads_and_its_options_exist(tmp_path, monkeypatch):
    """configs/chat_qwen.yaml (a real instruct model, needs the hub): valid without loading it."""
    import json
    from pathlib import Path

    from apl.loop.components import validate_config

    chats = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}]} for i in range(40)]
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the example's judge reads it
    path = Path(__file__).resolve().parents[1] / "configs" / "chat_qwen.yaml"
    config = load_config(path, [f"task.path={chats}"])
    validate_config(config)  # task and oracle options checked against their classes
    assert config.task.kwargs["chat_template"] == "auto" and config.model.lora is not None
    assert config.oracle.name == "openai_judge" and "template" not in config.oracle.kwargs
    stop = load_config(path, ['generation.stop=["\\nUser:"]']).generation.stop  # YAML escapes
    assert stop == ["\nUser:"]
    with pytest.raises(ConfigError, match=r"generation.stop \(\[''\]\): it holds an empty str"):
        load_config(path, ["generation.stop=['']"])
