"""Where and how DPO runs: an Accelerator for the model's device and precision; dropout off."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

_MIXED_PRECISION = {None: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability to 0, so DPO's log-ratios are not noise (TRL does the same)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def make_accelerator(device: torch.device, autocast_dtype: torch.dtype | None) -> Accelerator:
    """An Accelerator on `device` whose mixed precision matches `autocast_dtype` (None: fp32)."""
    kwargs = {"mixed_precision": _MIXED_PRECISION[autocast_dtype], "cpu": device.type == "cpu"}
    try:
        return Accelerator(**kwargs)
    except ValueError:
        # accelerate keeps one process-wide state; a later trainer in the same process with another
        # precision must reset it first, as transformers' TrainingArguments does every time.
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(**kwargs)
