"""Batch mechanics for sampling and scoring: length-sorted batches, padding, autocast."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence

import torch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into `lengths`, sorted by length (stable) and cut into batches, to cut padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(
    seqs: Sequence[Sequence[int]], pad_token_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token lists to one tensor; returns (input_ids, attention_mask, position_ids)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, width - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, position_ids_from_mask(mask)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count only real tokens (0 at each row's first token; pads get 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def context_length(model: torch.nn.Module) -> int | None:
    """The model's maximum number of positions, or None if its config does not say."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def accepts_logits_to_keep(model) -> bool:
    """Whether the model's forward takes `logits_to_keep` (by name or through **kwargs)."""
    params = inspect.signature(model.forward).parameters
    return "logits_to_keep" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """`torch.autocast` on the model's device for `dtype`, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
