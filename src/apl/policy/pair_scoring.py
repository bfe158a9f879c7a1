"""log p(chosen|x) and log p(rejected|x) of preference pairs in one forward pass per pair.

A pair's chosen and rejected completions share their prompt, so `collate_shared_prompt`
packs each pair into one row, `[prompt | chosen | rejected | pad]`, and a 4D attention mask
lets chosen tokens see the prompt and earlier chosen tokens, and rejected tokens see the
prompt and earlier rejected tokens (never the chosen ones). Rejected tokens take the
positions they would have right after the prompt. Every log-prob is then the same function
of the same weights as with the pair's two sequences run apart, but the prompt is computed
once and padding is per pair rather than per prompt and per completion. The last prompt
token's logits predict both completions' first tokens, so they are computed once too.
Models whose attention cannot take a custom 4D mask use `sequence_logps` on the two
sequences instead (see `supports_shared_prompt`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from apl.policy.batching import accepts_logits_to_keep
from apl.policy.decoding import supports_slot_decoding

# Segment ids in a packed row.
PAD, PROMPT, CHOSEN, REJECTED = 0, 1, 2, 3
MASK_ATTENTION = ("sdpa", "eager")  # attention implementations that take a custom 4D mask


def supports_shared_prompt(model) -> bool:
    """Whether `model` can score a packed pair: a 4D-mask attention and full-attention layers."""
    if not supports_slot_decoding(model):  # transformers' attention interface, no sliding window
        return False
    return getattr(model.config, "_attn_implementation", None) in MASK_ATTENTION


def collate_shared_prompt(
    prompt_ids: Sequence[Sequence[int]],
    chosen_ids: Sequence[Sequence[int]],
    rejected_ids: Sequence[Sequence[int]],
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """Pack pairs into rows `[prompt | chosen | rejected | pad]` with what scoring them needs.

    Returns input_ids, position_ids and segment ids [B, T]; `logit_mask` [B, T] marks the
    positions whose logits are needed (the last prompt token, every chosen token but the last,
    every rejected token but the last); per target token (all completion tokens), `target_rows`
    indexes those kept positions in row-major order, `targets` is the token and
    `target_seqs` its sequence (pair i's chosen is i, its rejected B + i).
    """
    rows = len(prompt_ids)
    width = max(len(p) + len(c) + len(r) for p, c, r in zip(prompt_ids, chosen_ids, rejected_ids))
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((rows, width), dtype=torch.long)
    segments = torch.zeros((rows, width), dtype=torch.long)
    logit_mask = torch.zeros((rows, width), dtype=torch.bool)
    target_rows: list[int] = []
    targets: list[int] = []
    target_seqs: list[int] = []
    kept = 0  # kept positions in earlier rows
    for i, (prompt, chosen, rejected) in enumerate(zip(prompt_ids, chosen_ids, rejected_ids)):
        p, c, r = len(prompt), len(chosen), len(rejected)
        assert p > 0, "a prompt needs at least one token to predict its completions"
        input_ids[i, : p + c + r] = torch.as_tensor([*prompt, *chosen, *rejected])
        position_ids[i, : p + c] = torch.arange(p + c)
        position_ids[i, p + c : p + c + r] = torch.arange(p, p + r)
        segments[i, :p], segments[i, p : p + c], segments[i, p + c : p + c + r] = (
            PROMPT,
            CHOSEN,
            REJECTED,
        )
        # Kept positions in this row, in order: p-1, chosen[:-1], rejected[:-1].
        logit_mask[i, p - 1] = True
        logit_mask[i, p : p + c - 1] = True
        logit_mask[i, p + c : p + c + r - 1] = True
        n_chosen_rows = max(c - 1, 0)
        for k in range(c):  # chosen[k] is predicted by the prompt's last token, then chosen[k-1]
            target_rows.append(kept + k)
            targets.append(chosen[k])
            target_seqs.append(i)
        for k in range(r):  # rejected[0] by the prompt's last token, rejected[k] by rejected[k-1]
            target_rows.append(kept if k == 0 else kept + n_chosen_rows + k)
            targets.append(rejected[k])
            target_seqs.append(rows + i)
        kept += 1 + n_chosen_rows + max(r - 1, 0)
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "segments": segments,
        "logit_mask": logit_mask,
        "target_rows": torch.as_tensor(target_rows, dtype=torch.long),
        "targets": torch.as_tensor(targets, dtype=torch.long),
        "target_seqs": torch.as_tensor(target_seqs, dtype=torch.long),
    }


def shared_prompt_mask(segments: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """The [B, 1, T, T] mask of packed rows: causal, no padding, rejected never sees chosen.

    Boolean (True: may attend) when `dtype` is None, else additive (0 or the dtype's minimum).
    A padding query attends to itself only, so no softmax row is empty (no NaN); nothing
    real ever attends to padding, so its values never reach a log-prob or a gradient.
    """
    length = segments.shape[1]
    idx = torch.arange(length, device=segments.device)
    causal = idx[None, :] <= idx[:, None]  # [T(query), T(key)]
    query, key = segments[:, :, None], segments[:, None, :]
    allowed = causal & (key != PAD) & (query != PAD) & ~((query == REJECTED) & (key == CHOSEN))
    allowed = allowed | (idx[None, :] == idx[:, None])  # the diagonal: padding sees itself
    allowed = allowed[:, None]
    if dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=segments.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min
    )


def pair_logps(
    model, batch: dict[str, torch.Tensor], additive_mask: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(chosen|x), log p(rejected|x) per pair (float32 [B] each), differentiable.

    `batch` comes from `collate_shared_prompt`, on the model's device. `additive_mask` for
    models running "eager" attention (it adds the mask); SDPA takes the boolean one.
    """
    segments = batch["segments"]
    mask = shared_prompt_mask(segments, torch.float32 if additive_mask else None)
    keep = batch["logit_mask"]
    kwargs = {"logits_to_keep": keep} if accepts_logits_to_keep(model) else {}
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=mask,
        position_ids=batch["position_ids"],
        use_cache=False,
        **kwargs,
    ).logits
    if logits.dim() == 3:  # the model ignored logits_to_keep: select the positions here
        logits = logits[keep]
    token_logps = gather_log_softmax(logits, batch["target_rows"], batch["targets"])
    rows = segments.shape[0]
    sums = torch.zeros(2 * rows, dtype=torch.float32, device=token_logps.device)
    sums = sums.index_add(0, batch["target_seqs"], token_logps)
    return sums[:rows], sums[rows:]


class _GatherLogSoftmax(torch.autograd.Function):
    """log_softmax(logits)[rows, tokens] whose backward reuses the saved log-softmax in place.

    Autograd's own chain (log_softmax, then indexing) holds three [N, V] float32 buffers at
    its peak in backward (the saved log-softmax, the scattered gradient, log_softmax's
    gradient); this holds one: backward turns the saved log-softmax into softmax in place,
    scales each row by minus its summed upstream gradient and adds the upstream gradient at
    the targets, which is the same formula. Its graph can run backward once (no retain_graph).
    """

    @staticmethod
    def forward(ctx, logits, rows, tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)
        ctx.save_for_backward(logp, rows, tokens)
        ctx.logits_dtype = logits.dtype
        return logp[rows, tokens]

    @staticmethod
    def backward(ctx, grad):
        if getattr(ctx, "spent", False):
            raise RuntimeError("gather_log_softmax: its graph runs backward once (no retain_graph)")
        ctx.spent = True
        logp, rows, tokens = ctx.saved_tensors
        row_grad = torch.zeros(logp.shape[0], dtype=grad.dtype, device=grad.device)
        row_grad.index_add_(0, rows, grad)  # a row that predicts two targets sums both
        out = logp.exp_().mul_(-row_grad[:, None])  # softmax * -sum(grad): logp is ours
        out.index_put_((rows, tokens), grad, accumulate=True)
        return out.to(ctx.logits_dtype), None, None


def gather_log_softmax(logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor):
    """log_softmax(logits)[rows, tokens] in float32: one log-prob per (row, token) target.

    Rows may repeat. With gradients on, one [N, V] buffer instead of three (see
    `_GatherLogSoftmax`); inside `torch.compile` the plain formula, which inductor fuses.
    """
    if torch.compiler.is_compiling() or not (torch.is_grad_enabled() and logits.requires_grad):
        return torch.log_softmax(logits.float(), dim=-1)[rows, tokens]
    return _GatherLogSoftmax.apply(logits, rows, tokens)
