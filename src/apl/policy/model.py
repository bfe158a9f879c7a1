"""Load any Hugging Face causal LM and tokenizer, choosing device, weight dtype and autocast."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from apl.config import LoraConfig, ModelConfig
from apl.errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A policy ready to use: model in eval mode on `device`, tokenizer padding on the left."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 when autocast is on, else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """`torch.autocast` on this device when autocast is on, else a no-op context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def builtin_dir(name: str) -> Path:
    """Where the package keeps the built-in model `name` (it may not exist)."""
    return Path(str(resources.files("apl").joinpath("assets", name)))


def resolve_model_path(name_or_path: str) -> str:
    """`builtin:<name>` -> the package's asset directory; anything else is returned unchanged."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path.removeprefix(BUILTIN_PREFIX)
    path = builtin_dir(name)
    if not (path / "config.json").is_file():
        assets = builtin_dir("")
        available = (
            sorted(p.name for p in assets.iterdir() if (p / "config.json").is_file())
            if assets.is_dir()
            else []
        )
        raise ModelLoadError(
            f"model.model_name_or_path ({name_or_path!r}): built-in model not found at {path} "
            f"(available: {', '.join(available) or 'none'}); run "
            f"`apl pretrain --output-dir {path}` or reinstall apl."
        )
    return str(path)


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask oneDNN whether it has native bf16 kernels
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 autocast is fast: CUDA with bf16, or a CPU with AVX512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16()
    return False  # mps: bf16 autocast support is partial; stay in fp32


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda if present, then mps, else cpu; an explicit device must exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device, False):
        raise ConfigError(
            f"model.device ({device!r}) is not available on this machine; use 'auto' or 'cpu'."
        )
    return torch.device(device)


def resolve_autocast(config: ModelConfig, device: torch.device) -> torch.dtype | None:
    """bf16 when `config.bf16` is True, or None (auto) and the device supports it; else None."""
    if config.bf16 is None:
        return torch.bfloat16 if bf16_supported(device) else None
    if not config.bf16:
        return None
    if device.type != "cpu" and not bf16_supported(device):
        raise ConfigError(
            f"model.bf16 (True): {device.type} here has no bf16 support; set model.bf16 to false."
        )
    if device.type == "cpu" and not bf16_supported(device):
        logger.warning("model.bf16 is on but this CPU lacks native bf16: autocast will be slow.")
    return torch.bfloat16


def _load_error(value: str, err: Exception) -> ModelLoadError:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ModelLoadError(
        f"model.model_name_or_path ({value!r}) could not be loaded: {reason[:200]}. Give a "
        "local directory with config.json and tokenizer files (`apl pretrain --output-dir DIR` "
        "makes one), a hub name already in the local cache, or set HF_HUB_OFFLINE=0 with "
        "internet access."
    )


def _local_path(value: str) -> str:
    """The directory or hub name to load `model.model_name_or_path` from."""
    path = resolve_model_path(value)
    if value.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().exists():
        raise _load_error(value, FileNotFoundError(f"no such directory {path}"))
    return str(Path(path).expanduser()) if path.startswith("~") else path


def load_tokenizer(config: ModelConfig) -> PreTrainedTokenizerBase:
    """The policy's tokenizer alone (seconds), padding on the left, pad token set."""
    value = config.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            _local_path(value), trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError, KeyError) as err:
        raise _load_error(value, err) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(
                f"model.model_name_or_path ({value!r}): tokenizer has neither a pad nor an EOS "
                "token; add one to its tokenizer_config.json."
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    config: ModelConfig, tokenizer: PreTrainedTokenizerBase | None = None
) -> LoadedModel:
    """Load `config.model_name_or_path` onto its device, with LoRA if `config.lora` is set.

    `tokenizer`: one `load_tokenizer(config)` already returned, so it is not loaded twice.
    """
    value = config.model_name_or_path
    device = resolve_device(config.device)
    dtype = torch.float32 if config.dtype == "auto" else _DTYPES[config.dtype]
    autocast_dtype = resolve_autocast(config, device)
    if tokenizer is None:
        tokenizer = load_tokenizer(config)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            _local_path(value), dtype=dtype, trust_remote_code=config.trust_remote_code
        )
    except (OSError, ValueError, KeyError) as err:
        raise _load_error(value, err) from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    fuse_gelu(model)
    if config.lora is not None:
        model = apply_lora(model, config.lora)
    model.to(device).eval()
    logger.info(
        "loaded %s on %s (weights %s, autocast %s, LoRA %s)",
        value,
        device,
        dtype,
        autocast_dtype,
        "on" if config.lora else "off",
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, device=device, autocast_dtype=autocast_dtype
    )


def fuse_gelu(model: torch.nn.Module) -> int:
    """Run GPT-2's `gelu_new` as one fused kernel (transformers' GELUTanh); returns the count.

    `gelu_new` and `gelu_fast` are the tanh approximation of GELU written as 5-8 tensor ops,
    each of which keeps its output for backward; `F.gelu(approximate="tanh")` is the same
    function in one op (equal up to float rounding), which keeps only its input. On the
    shipped model that cut a DPO step's peak memory by a third and its time by ~10%, and
    speeds up sampling and scoring alike (docs/BENCHMARKS.md). The config is left as it is.
    """
    from transformers.activations import FastGELUActivation, GELUTanh, NewGELUActivation

    swapped = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) in (NewGELUActivation, FastGELUActivation):
                setattr(module, name, GELUTanh())
                swapped += 1
    return swapped


def apply_lora(model: PreTrainedModel, lora: LoraConfig):  # -> peft.PeftModel
    """Wrap `model` in a PEFT LoRA adapter; `with model.disable_adapter():` gives the base back."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers.pytorch_utils import Conv1D

    peft_config = PeftLoraConfig(
        r=lora.r,
        # GPT-2 stores its projections as Conv1D (weights transposed); say so rather than warn
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)
