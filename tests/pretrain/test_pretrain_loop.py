"""The pretraining loop on a tiny config: it learns, saves like a hub model, and is seeded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from apl.errors import ConfigError
from apl.pretrain.card import read_loss_log
from apl.pretrain.config import PretrainConfig, make_pretrain_config
from apl.pretrain.data import validation_blocks
from apl.pretrain.train import PretrainResult, evaluate_loss, lr_at, pretrain

TINY = dict(
    max_train_reviews=200,
    val_blocks=8,
    vocab_size=384,
    n_layer=2,
    n_embd=32,
    n_head=2,
    n_positions=64,
    max_steps=16,
    batch_size=8,
    warmup_steps=2,
    eval_every=8,
    num_samples=1,
)


def _run(out: Path, **overrides) -> PretrainResult:
    config = make_pretrain_config(**{**TINY, "output_dir": str(out), **overrides})
    return pretrain(config, show_progress=False, command="apl pretrain (test)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PretrainResult]:
    """Two runs with seed 0 and one with seed 1."""
    root = tmp_path_factory.mktemp("pretrain")
    return {
        "a": _run(root / "a"),
        "a_again": _run(root / "a_again"),
        "b": _run(root / "b", seed=1),
    }


def test_tiny_pretraining_lowers_train_and_val_loss(runs):
    curve = runs["a"].curve
    assert [p["step"] for p in curve] == [0, 8, 16]
    assert curve[0]["val_loss"] == pytest.approx(math.log(384), abs=0.3)  # untrained: ~uniform
    assert curve[-1]["val_loss"] < curve[0]["val_loss"] - 0.3
    assert curve[-1]["train_loss"] < curve[1]["train_loss"]
    assert runs["a"].tokens_seen == 16 * 8 * 64


def test_output_loads_through_auto_classes_and_matches_reported_loss(runs):
    result = runs["a"]
    model = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert next(model.parameters()).dtype == torch.float32  # bf16 on disk, fp32 by default
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    assert (model.config.n_layer, model.config.n_embd, model.config.n_positions) == (2, 32, 64)
    assert model.config.eos_token_id == tokenizer.eos_token_id == tokenizer.pad_token_id
    assert len(tokenizer) == model.config.vocab_size == 384
    assert tokenizer.model_max_length == 64 and tokenizer.padding_side == "left"
    val = validation_blocks(tokenizer, 64, 8)
    assert evaluate_loss(model, val) == pytest.approx(result.saved_val_loss, abs=1e-4)
    # bf16-saved weights cost little loss against the fp32 weights that trained
    assert abs(result.saved_val_loss - result.val_loss) < 0.05
    assert (
        next(iter(load_file(result.output_dir / "model.safetensors").values())).dtype
        == torch.bfloat16
    )


def test_same_seed_gives_identical_weights_and_other_seed_differs(runs):
    a = load_file(runs["a"].output_dir / "model.safetensors")
    again = load_file(runs["a_again"].output_dir / "model.safetensors")
    b = load_file(runs["b"].output_dir / "model.safetensors")
    assert a.keys() == again.keys()
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert runs["a"].samples == runs["a_again"].samples


def test_loss_log_summary_and_card_are_written(runs):
    result = runs["a"]
    rows = read_loss_log(result.output_dir / "loss_log.csv")
    assert [r["step"] for r in rows] == [0.0, 8.0, 16.0]
    assert rows[-1]["val_loss"] == pytest.approx(result.val_loss, abs=1e-3)
    summary = json.loads((result.output_dir / "pretrain_summary.json").read_text())
    assert summary["config"]["max_steps"] == 16 and summary["command"] == "apl pretrain (test)"
    assert len(summary["samples"]) == 1 and summary["samples"][0].startswith("This movie")
    card = (result.output_dir / "README.md").read_text()
    assert "apl pretrain (test)" in card and f"{summary['val_loss']}" in card


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    config = PretrainConfig(max_steps=100, warmup_steps=10, learning_rate=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(step, config) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)
    assert lr_at(100, config) == pytest.approx(1e-4)


def test_defaults_match_the_issue():
    config = PretrainConfig()
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions) == (4, 256, 4, 128)
    assert config.vocab_size == 8192 and config.bf16 is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"max_steps": 0}, "--max-steps (0)"),
        ({"n_embd": 30, "n_head": 4}, "n_embd (30) is not divisible by n_head (4)"),
        ({"learning_rate": -1.0}, "--learning-rate (-1.0)"),
    ],
)
def test_bad_options_give_one_line_config_errors(overrides, needle):
    with pytest.raises(ConfigError) as info:
        make_pretrain_config(**overrides)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_batch_larger_than_data_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--batch-size \(4096\)"):
        _run(tmp_path / "x", max_train_reviews=5, batch_size=4096, max_steps=1)
