"""Sequence log-probs log p(y|x) for (prompt, completion) token batches, for any causal LM.

Layout of a collated batch: `[left pad | prompt | completion | right pad]`, so every row's
completion starts in the same column and position ids count only real tokens. Logits are
computed only at the positions that predict a completion token (the model's `logits_to_keep`
takes a boolean mask), so the full [B, T, V] logits are never built when the model supports it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from apl.errors import ConfigError
from apl.policy.batching import (
    accepts_logits_to_keep,
    autocast_context,
    context_length,
    length_sorted_batches,
    model_device,
    position_ids_from_mask,
)

logger = logging.getLogger(__name__)


def _truncate(prompt: Sequence[int], completion: Sequence[int], max_length: int | None):
    """Fit prompt+completion into max_length: keep the completion, cut the prompt's start.

    At least one prompt token is kept (it predicts the first completion token); a completion
    longer than max_length - 1 keeps its first max_length - 1 tokens.
    """
    if max_length is None or len(prompt) + len(completion) <= max_length:
        return list(prompt), list(completion)
    completion = list(completion[: max_length - 1])
    keep = max(1, max_length - len(completion))
    return list(prompt[-keep:]), completion


def collate_pairs(
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    pad_token_id: int,
    max_length: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad pairs into input_ids / attention_mask / completion_mask / position_ids tensors.

    Prompts are left-padded and completions right-padded. When prompt+completion exceeds
    `max_length`, the completion is kept and the prompt's start is cut (see `_truncate`).
    """
    if len(prompt_ids) != len(completion_ids):
        raise ConfigError(
            f"{len(prompt_ids)} prompts but {len(completion_ids)} completions; pass one "
            "completion per prompt (repeat a prompt to score several completions)."
        )
    if max_length is not None and max_length < 2:
        raise ConfigError(
            f"`max_length` ({max_length}) must be >= 2 (one prompt + one completion token)."
        )
    pairs = []
    cut = 0
    for i, (prompt, completion) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        if len(prompt) == 0:
            raise ConfigError(
                f"Prompt {i} has 0 tokens, so its first completion token cannot be scored; "
                "encode prompts with `encode_prompts` (an empty prompt becomes BOS)."
            )
        pair = _truncate(prompt, completion, max_length)
        cut += len(pair[0]) + len(pair[1]) < len(prompt) + len(completion)
        pairs.append(pair)
    if cut:
        logger.warning(
            "cut %d of %d pairs to max_length=%s (prompt start dropped)",
            cut,
            len(pairs),
            max_length,
        )
    p_width = max(len(p) for p, _ in pairs)
    c_width = max((len(c) for _, c in pairs), default=0)
    shape = (len(pairs), p_width + c_width)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    completion_mask = torch.zeros(shape, dtype=torch.long)
    for row, (prompt, completion) in enumerate(pairs):
        start, end = p_width - len(prompt), p_width + len(completion)
        input_ids[row, start:end] = torch.as_tensor(prompt + completion, dtype=torch.long)
        attention_mask[row, start:end] = 1
        completion_mask[row, p_width:end] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "position_ids": position_ids_from_mask(attention_mask),
    }


def sequence_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    average: bool = False,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row sum (or mean) of log p(token) over positions where completion_mask is 1.

    Differentiable (the DPO trainer calls it with gradients on); float32 [B]. A token in
    column 0 has no context and is never scored. Rows with no completion tokens give 0.
    """
    if position_ids is None:
        position_ids = position_ids_from_mask(attention_mask)
    # keep[b, t] is True where position t predicts completion token t + 1.
    keep = torch.zeros_like(completion_mask, dtype=torch.bool)
    keep[:, :-1] = completion_mask[:, 1:].bool()
    kwargs = {"logits_to_keep": keep} if accepts_logits_to_keep(model) else {}
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        **kwargs,
    ).logits
    if logits.dim() == 3:  # the model ignored logits_to_keep: select the positions here
        logits = logits[keep]
    targets = input_ids[:, 1:][keep[:, :-1]]
    token_logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    rows = keep.nonzero(as_tuple=True)[0]
    sums = torch.zeros(input_ids.shape[0], dtype=torch.float32, device=token_logps.device)
    sums = sums.index_add(0, rows, token_logps)
    if not average:
        return sums
    counts = keep.sum(-1).clamp_min(1).to(sums.dtype)
    return sums / counts


@torch.no_grad()
def completion_logps(
    model,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 64,
    average: bool = False,
    autocast_dtype: torch.dtype | None = None,
    pad_token_id: int = 0,
) -> torch.Tensor:
    """log p(completion | prompt) summed (or averaged) over completion tokens: float32 [N], no grad.

    Pairs are sorted by length into batches to cut padding; results come back in input order.
    Pairs longer than the model's context keep the completion and lose the prompt's start.
    """
    if batch_size < 1:
        raise ConfigError(f"`batch_size` ({batch_size}) must be >= 1.")
    if len(prompt_ids) != len(completion_ids):
        raise ConfigError(
            f"{len(prompt_ids)} prompts but {len(completion_ids)} completions; pass one "
            "completion per prompt."
        )
    device = model_device(model)
    max_length = context_length(model)
    out = torch.zeros(len(prompt_ids), dtype=torch.float32)
    lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    was_training = model.training
    model.eval()  # scoring is deterministic: dropout off, restored below
    try:
        with autocast_context(device, autocast_dtype):
            for idx in length_sorted_batches(lengths, batch_size):
                batch = collate_pairs(
                    [prompt_ids[i] for i in idx],
                    [completion_ids[i] for i in idx],
                    pad_token_id,
                    max_length=max_length,
                )
                batch = {k: v.to(device) for k, v in batch.items()}
                logps = sequence_logps(model, **batch, average=average)
                out[torch.as_tensor(idx)] = logps.float().cpu()
    finally:
        model.train(was_training)
    return out
