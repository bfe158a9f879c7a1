"""One batch's forward passes while sampling: prefill once, then one token per row per step.

`SlotDecoder` (any model whose attention goes through transformers' AttentionInterface and
whose layers all attend fully) keeps each layer's keys/values in buffers allocated once: a
decode step writes its token at the next slot and attends over the slots written so far,
an additive 4D mask hiding left padding. The number of slots seen is a tensor's shape, so a
step compiled with `torch.compile` (opt-in) takes it, the batch size and the buffer length
as symbolic sizes: one graph serves every step and batch. Decode steps run the model's own
"eager" attention (two small matmuls and a softmax, measured faster than SDPA for one query
token on CPU, docs/BENCHMARKS.md); prefill keeps the model's attention and masks.
`DynamicDecoder` is the fallback for every other model: a DynamicCache and 2D masks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Callable

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from apl.policy.batching import accepts_logits_to_keep

logger = logging.getLogger(__name__)


class Window:
    """The buffer slots a decode step sees, shared by all SlotLayers of one cache."""

    def __init__(self, max_len: int, device: torch.device):
        self.all_slots = torch.arange(max_len, device=device)
        self.slots = self.all_slots[:0]

    def open(self, length: int) -> None:
        """Let the next step see slots [0, length); it writes its token at slot length - 1."""
        self.slots = self.all_slots[:length]


class SlotLayer(DynamicLayer):
    """A full-attention cache layer over buffers allocated once (`max_len` slots per row).

    Prefill fills the first slots; a decode step writes its token at the window's last slot
    and attends over the window. The window's length comes from a tensor's shape, so a
    compiled step takes it as a symbolic size (one graph for every step, not one per length).
    `keys`/`values` are the whole buffers: DynamicLayer's row selection and repetition work
    unchanged.
    """

    def __init__(self, window: Window):
        super().__init__()
        self.window = window

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Prefill: store the prompt and attend over it; decode: write, attend over the window."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys = self._buffer(key_states)
            self.values = self._buffer(value_states)
            return key_states, value_states
        length = self.window.slots.shape[0]
        self.keys[:, :, length - 1 : length] = key_states
        self.values[:, :, length - 1 : length] = value_states
        return self.keys[:, :, :length], self.values[:, :, :length]

    def _buffer(self, states: torch.Tensor) -> torch.Tensor:
        batch, heads, length, dim = states.shape
        buf = states.new_zeros((batch, heads, len(self.window.all_slots), dim))
        buf[:, :, :length] = states
        return buf


def supports_slot_decoding(model) -> bool:
    """Whether `model` can decode with SlotLayers: switchable attention and full-attention layers."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
    if not getattr(base, "_supports_attention_backend", False):
        return False
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


@contextlib.contextmanager
def eager_attention(model):
    """Run the model's "eager" attention inside the block (it takes the additive 4D mask)."""
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = previous


def forward_step(model, tokens, positions, mask, cache) -> torch.Tensor:
    """Logits [B, V] of the next token after one decode step (the function that is compiled)."""
    out = model(
        input_ids=tokens,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    )
    return out.logits[:, -1, :]


class MaybeCompiled:
    """`fn` through `torch.compile` on first use; `fn` itself from the first failure on."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.compiled: Callable | None = None
        self.failed = False

    def __call__(self, *args, compile: bool = True):
        """Run compiled when `compile` and compiling has not failed in this process."""
        if compile and not self.failed:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.fn, dynamic=False)
                return self.compiled(*args)
            # Any failure (no C++ compiler, an unsupported op, a backend bug) means: run uncompiled.
            except Exception as err:  # noqa: BLE001
                self.failed = True
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                logger.warning(
                    "torch.compile of %s failed (%s); sampling continues uncompiled.",
                    self.fn.__name__,
                    reason,
                )
        return self.fn(*args)


FORWARD_STEP = MaybeCompiled(forward_step)


def compiler_available(device: torch.device) -> bool:
    """Whether torch.compile's CPU backend can build here: a CPU device and a C++ compiler.

    Inductor compiles C++ for CPU with `$CXX` (default g++, clang++ on macOS); without one
    every compile fails (MaybeCompiled would then fall back after a warning).
    """
    if device.type != "cpu" or sys.platform == "win32":
        return False
    default = "clang++" if sys.platform == "darwin" else "g++"
    return shutil.which(os.environ.get("CXX", default)) is not None


def mark_dynamic(tensor: torch.Tensor, *dims: int) -> None:
    """Compile one graph for every size of these dims rather than one graph per shape."""
    for dim in dims:
        torch._dynamo.maybe_mark_dynamic(tensor, dim)


class _Decoder:
    """What both decoders share: a cache and a per-row mask, repeated or cut row-wise."""

    model: torch.nn.Module
    cache: DynamicCache
    mask: torch.Tensor

    def prefill(self, ids, prompt_mask, positions) -> torch.Tensor:
        """Logits [B, V] after each prompt, from the model's own attention and masks."""
        last_only = {"logits_to_keep": 1} if accepts_logits_to_keep(self.model) else {}
        out = self.model(
            input_ids=ids,
            attention_mask=prompt_mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            **last_only,
        )
        return out.logits[:, -1, :]

    def repeat(self, repeats: int) -> None:
        """Repeat each row `repeats` times (a prompt's samples share its prefill)."""
        self.cache.batch_repeat_interleave(repeats)
        self.mask = self.mask.repeat_interleave(repeats, dim=0)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only batch rows `rows` (finished completions leave the batch)."""
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]


class SlotDecoder(_Decoder):
    """Decoding over SlotLayer buffers of `max_len` slots per row, with an additive mask."""

    def __init__(self, model, prompt_mask: torch.Tensor, max_len: int, compile: bool):
        self.model, self.compile = model, compile
        self.window = Window(max_len, prompt_mask.device)
        self.cache = DynamicCache(config=model.config)
        self.cache.layers = [SlotLayer(self.window) for _ in self.cache.layers]
        # 0 where a row may attend, float32 min elsewhere (finite: no NaN from a masked row)
        self.mask = torch.full(
            (prompt_mask.shape[0], 1, 1, max_len),
            torch.finfo(torch.float32).min,
            device=prompt_mask.device,
        )
        self.mask[:, 0, 0, : prompt_mask.shape[1]].masked_fill_(prompt_mask.bool(), 0.0)

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slot: int) -> torch.Tensor:
        """Write `tokens` [B] at buffer slot `slot` and return the next logits [B, V]."""
        self.mask[:, 0, 0, slot] = 0.0
        self.window.open(slot + 1)
        tokens, mask = tokens[:, None], self.mask[:, :, :, : slot + 1]
        if self.compile:  # sizes that vary between calls: batch rows, buffer and window length
            for tensor, dims in [(tokens, (0,)), (positions, (0,)), (mask, (0, 3))]:
                mark_dynamic(tensor, *dims)
            mark_dynamic(self.window.slots, 0)
            for layer in self.cache.layers:
                mark_dynamic(layer.keys, 0, 2), mark_dynamic(layer.values, 0, 2)
        with eager_attention(self.model):
            return FORWARD_STEP(
                self.model, tokens, positions, mask, self.cache, compile=self.compile
            )


class DynamicDecoder(_Decoder):
    """Decoding with transformers' DynamicCache and 2D masks, for models SlotDecoder can't run."""

    def __init__(self, model, prompt_mask: torch.Tensor, max_len: int):
        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.mask = torch.ones(
            (prompt_mask.shape[0], max_len), dtype=torch.long, device=prompt_mask.device
        )
        self.mask[:, : prompt_mask.shape[1]] = prompt_mask

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, slot: int) -> torch.Tensor:
        """Append `tokens` [B] at position `slot` of the padded rows; return the next logits."""
        return forward_step(
            self.model, tokens[:, None], positions, self.mask[:, : slot + 1], self.cache
        )


def new_decoder(model, prompt_mask: torch.Tensor, max_len: int, compile: bool = False):
    """A SlotDecoder where the model allows it, else a DynamicDecoder (never compiled)."""
    if supports_slot_decoding(model):
        return SlotDecoder(model, prompt_mask, max_len, compile)
    if compile:
        logger.info(
            "%s cannot decode over preallocated slots; sampling uncompiled.", type(model).__name__
        )
    return DynamicDecoder(model, prompt_mask, max_len)
