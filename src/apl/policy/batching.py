"""Batch mechanics for sampling and scoring: length-sorted batches, padding, KV cache, autocast."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


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


class PreallocatedLayer(DynamicLayer):
    """A full-attention DynamicLayer whose keys/values are views of buffers allocated once.

    It attends over the filled length only (StaticCache attends over its whole buffer) and
    never calls `torch.cat` (DynamicCache copies its whole cache every step).
    """

    def __init__(self, max_len: int, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Write the new states after the filled part; return views of everything filled."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._alloc(key_states, key_states.shape[0])
            self._v = self._alloc(value_states, value_states.shape[0])
        end = self.length + key_states.shape[-2]
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def _alloc(self, like: torch.Tensor, batch: int) -> torch.Tensor:
        return like.new_empty((batch, like.shape[1], self.max_len, like.shape[-1]))

    def _reindex(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) the batch rows `rows`, copying only the filled part."""
        if self.length == 0:
            return
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = self._alloc(old, len(rows))
            new[:, :, : self.length] = old[rows, :, : self.length]
            setattr(self, name, new)
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat each row `repeats` times (k samples share one prompt prefill)."""
        rows = torch.arange(self._k.shape[0], device=self._k.device)
        self._reindex(rows.repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices` (finished completions leave the batch)."""
        self._reindex(indices)


def new_kv_cache(model, max_len: int) -> DynamicCache:
    """A fresh KV cache for one batch of at most `max_len` tokens per row."""
    cache = DynamicCache(config=model.config)
    # Only plain full-attention layers are swapped; sliding-window or linear layers stay dynamic.
    if all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [PreallocatedLayer(max_len) for _ in cache.layers]
    return cache
