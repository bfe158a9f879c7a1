"""Loading a causal LM: paths, builtin assets, device/dtype/autocast, LoRA, and bad input."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoTokenizer

from apl.config import BUILTIN_MODEL, LoraConfig, ModelConfig
from apl.errors import ConfigError, ModelLoadError
from apl.policy import model as policy_model
from apl.policy.model import (
    LoadedModel,
    bf16_supported,
    builtin_dir,
    fuse_gelu,
    load_model,
    resolve_device,
    resolve_model_path,
)


def _load(path: Path, **kwargs) -> LoadedModel:
    return load_model(ModelConfig(model_name_or_path=str(path), device="cpu", **kwargs))


def test_loads_tiny_model_from_a_directory_in_eval_mode_with_left_padding(tiny_model_dir):
    loaded = _load(tiny_model_dir)
    assert loaded.device == torch.device("cpu")
    assert not loaded.model.training
    assert next(loaded.model.parameters()).dtype == torch.float32  # dtype auto keeps fp32
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token_id is not None
    ids = loaded.tokenizer(["a good film", "bad"], return_tensors="pt", padding=True)
    assert ids["attention_mask"][1, 0] == 0  # the shorter row is padded on the left
    with torch.no_grad(), loaded.autocast():
        logits = loaded.model(**ids).logits
    assert logits.shape[:2] == ids["input_ids"].shape


def test_gelu_new_runs_fused_with_the_same_outputs(tiny_model_dir):
    """load_model swaps GPT-2's gelu_new for the one-kernel tanh GELU: same function, same logits."""
    from transformers import AutoModelForCausalLM
    from transformers.activations import GELUTanh, NewGELUActivation

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert plain.config.activation_function == "gelu_new"
    loaded = _load(tiny_model_dir).model
    assert not any(isinstance(m, NewGELUActivation) for m in loaded.modules())
    assert sum(isinstance(m, GELUTanh) for m in loaded.modules()) == plain.config.n_layer
    assert fuse_gelu(loaded) == 0  # idempotent
    ids = torch.randint(0, 500, (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, plain(ids).logits, atol=1e-5, rtol=0)


def test_weight_dtype_option_is_honoured(tiny_model_dir):
    loaded = _load(tiny_model_dir, dtype="bfloat16", bf16=False)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


def test_autocast_auto_follows_hardware_and_explicit_choices_win(tiny_model_dir):
    auto = _load(tiny_model_dir)
    expected = torch.bfloat16 if bf16_supported(torch.device("cpu")) else None
    assert auto.autocast_dtype == expected
    off = _load(tiny_model_dir, bf16=False)
    assert off.autocast_dtype is None and isinstance(off.autocast(), contextlib.nullcontext)
    on = _load(tiny_model_dir, bf16=True)
    assert on.autocast_dtype == torch.bfloat16
    x = torch.randn(4, 4)
    with on.autocast():
        assert (x @ x).dtype == torch.bfloat16
    with off.autocast():
        assert (x @ x).dtype == torch.float32


def test_cpu_bf16_detection_reads_cpu_flags(monkeypatch):
    policy_model._cpu_has_bf16.cache_clear()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    want = "avx512_bf16" in flags or "amx_bf16" in flags
    try:
        assert bf16_supported(torch.device("cpu")) is want
    finally:
        policy_model._cpu_has_bf16.cache_clear()
    assert bf16_supported(torch.device("mps")) is False


def test_device_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_a_one_line_config_error(tiny_model_dir):
    with pytest.raises(ConfigError, match=r"model\.device \('cuda'\) is not available"):
        load_model(ModelConfig(model_name_or_path=str(tiny_model_dir), device="cuda"))


def test_lora_wraps_the_model_and_the_adapter_can_be_disabled(tiny_model_dir):
    loaded = _load(tiny_model_dir, lora=LoraConfig(r=4, lora_alpha=8))
    model = loaded.model
    assert isinstance(model, PeftModel)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ids = loaded.tokenizer("a good film", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        start = model(ids).logits  # lora_B starts at zero: the adapter is a no-op
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
        adapted = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
    assert torch.allclose(start, base, atol=1e-6)
    assert not torch.allclose(adapted, base, atol=1e-3)


def test_tokenizer_without_pad_token_gets_eos(tiny_model_dir, tmp_path):
    target = tmp_path / "nopad"
    shutil.copytree(tiny_model_dir, target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(target)
    assert AutoTokenizer.from_pretrained(target).pad_token is None
    loaded = _load(target)
    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token


@pytest.mark.parametrize(
    "value",
    ["/no/such/model/dir", "./no-such-relative-dir", "no-such-org/no-such-model-xyz"],
)
def test_unloadable_names_give_one_line_model_load_errors(value):
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelConfig(model_name_or_path=value, device="cpu"))
    message = str(info.value)
    assert "\n" not in message
    assert "model.model_name_or_path" in message and repr(value) in message
    assert "apl pretrain" in message and "HF_HUB_OFFLINE=0" in message


def test_directory_without_config_is_a_model_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="model.model_name_or_path"):
        _load(tmp_path / "empty")


def test_missing_builtin_says_how_to_rebuild_it():
    with pytest.raises(ModelLoadError) as info:
        resolve_model_path("builtin:no-such-model")
    message = str(info.value)
    assert "apl pretrain --output-dir" in message and str(builtin_dir("no-such-model")) in message
    assert "\n" not in message


def test_non_builtin_names_pass_through_unchanged():
    assert resolve_model_path("gpt2") == "gpt2"
    assert resolve_model_path("/some/dir") == "/some/dir"


@pytest.mark.skipif(
    not (builtin_dir("imdb-gpt2") / "config.json").is_file(),
    reason="needs the shipped model under src/apl/assets/imdb-gpt2 (output of `apl pretrain`)",
)
def test_shipped_builtin_model_loads_and_meets_the_quality_bar():
    """Needs the shipped default model; skipped when it is absent."""
    from apl.pretrain.data import validation_blocks
    from apl.pretrain.train import evaluate_loss

    assert ModelConfig().model_name_or_path == BUILTIN_MODEL
    loaded = load_model(ModelConfig(device="cpu"))
    assert loaded.model.config.n_layer == 4 and len(loaded.tokenizer) == 8192
    val = validation_blocks(loaded.tokenizer, loaded.model.config.n_positions, 16)
    assert evaluate_loss(loaded.model, val) <= 5.5
