"""Frozen features of texts under the reference model theta_0, for feature-space acquisition.

BAL-PM (Melo et al., NeurIPS 2024) fits its preference-model ensemble and measures prompt
diversity on a frozen base LLM's last-layer features. Here the frozen model is the run's
reference (a copy of theta_0, or the LoRA base with the adapter off): a feature is the mean
last hidden state over the tokens it describes (a completion's own tokens with its prompt as
context, or a prompt's tokens). The reference never changes, so each feature is computed once
and cached; `sequences` counts the rows actually run (a compute cost the report shows).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from apl.policy.batching import autocast_context, left_pad, length_sorted_batches, model_device

_Key = tuple[tuple[int, ...], tuple[int, ...]]


class FeatureExtractor:
    """Mean last-layer hidden states under a frozen model, cached by token ids."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        pad_token_id: int,
        lora: bool = False,
        autocast_dtype: torch.dtype | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.lora = lora
        self.pad_token_id = pad_token_id
        self.autocast_dtype = autocast_dtype
        self.batch_size = batch_size
        self.sequences = 0  # rows run through the model; cache hits never add to it
        self._cache: dict[_Key, np.ndarray] = {}

    def _context(self) -> contextlib.AbstractContextManager:
        return self.model.disable_adapter() if self.lora else contextlib.nullcontext()

    def features(
        self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """[n, hidden] float64: mean hidden state over each completion's tokens (prompt as context).

        An empty completion describes its prompt instead (mean over the prompt's tokens).
        """
        keys = [(tuple(p), tuple(c)) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            self._run(missing)
        return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, 0))

    @torch.no_grad()
    def _run(self, keys: list[_Key]) -> None:
        was_training = self.model.training
        self.model.eval()
        device = model_device(self.model)
        try:
            with self._context():
                for batch in length_sorted_batches(
                    [len(p) + len(c) for p, c in keys], self.batch_size
                ):
                    rows = [list(keys[i][0]) + list(keys[i][1]) for i in batch]
                    ids, mask, positions = left_pad(rows, self.pad_token_id, device)
                    with autocast_context(device, self.autocast_dtype):
                        out = self.model(
                            input_ids=ids,
                            attention_mask=mask,
                            position_ids=positions,
                            output_hidden_states=True,
                        )
                    hidden = out.hidden_states[-1].float()
                    width = ids.shape[1]
                    for row, i in enumerate(batch):
                        prompt, completion = keys[i]
                        span = len(completion) or len(prompt)  # the last `span` tokens
                        vec = hidden[row, width - span :].mean(dim=0)
                        self._cache[keys[i]] = vec.cpu().numpy().astype(np.float64)
                    self.sequences += len(batch)
        finally:
            self.model.train(was_training)
