"""KV-cache sampler: k completions per prompt, with their log-probs under the untempered policy.

Any Hugging Face causal LM works: each prompt is prefilled once and its cache repeated for
its k samples; finished rows leave the batch; decode steps run through `decoding.py` (fixed
shapes over preallocated KV buffers and the model's eager attention where the model allows,
optionally `torch.compile`d; else a DynamicCache). Tokens are drawn by a two-level inverse CDF
(block sums, then one block's cumulative sum; one uniform per row): many times faster than
`torch.multinomial` on CPU, and the same distribution (temperature, top_k=0, top_p=1).
Prompts are never cut: one too long for the context raises ConfigError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from apl.errors import ConfigError
from apl.policy.batching import (
    autocast_context,
    context_length,
    left_pad,
    length_sorted_batches,
    model_device,
)
from apl.policy.decoding import MaybeCompiled, mark_dynamic, new_decoder
from apl.policy.stopping import cut_at_stop, stop_length
from apl.types import Completion

logger = logging.getLogger(__name__)


def encode_prompts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt (no special tokens); an empty prompt becomes [BOS] (or [EOS])."""
    fallback = tokenizer.bos_token_id
    if fallback is None:
        fallback = tokenizer.eos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    out = []
    for ids in encoded:
        if not ids:
            if fallback is None:
                raise ConfigError(
                    "An empty prompt cannot be encoded: the tokenizer has no BOS or EOS token; "
                    "drop empty prompts or set `tokenizer.bos_token`."
                )
            ids = [fallback]
        out.append(list(ids))
    return out


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's EOS and the model's generation EOS ids.

    Chat models list their end-of-turn tokens in `generation_config.eos_token_id` (often a list,
    e.g. Qwen's `<|im_end|>` and `<|endoftext|>`, Llama 3's `<|eot_id|>` among three).
    """
    ids = {tokenizer.eos_token_id}
    gen_config = getattr(model, "generation_config", None)
    gen_eos = getattr(gen_config, "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return sorted(i for i in ids if i is not None)


def draw_tokens(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `weights` [B, V] (non-negative, need not sum to 1), by inverse CDF."""
    return inverse_cdf(weights, _uniforms(weights.shape[0], weights.device, generator))


def _uniforms(rows: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """[rows, 1] uniforms in [0, 1) from `generator` (on its own device), moved to `device`."""
    rand_device = generator.device if generator is not None else device
    return torch.rand((rows, 1), generator=generator, device=rand_device).to(device)


CDF_BLOCK = 128  # vocabulary block of the two-level inverse CDF


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per row, the first token whose cumulative weight exceeds u [B, 1] times the row's total.

    Two levels (block sums, then one block's cumsum): a cumsum over the whole vocabulary was
    the costliest op of a sampling step. Zero-weight tokens are never picked: the target is
    kept strictly below each level's total, so the chosen entry is where the sum increases.
    """
    rows, vocab = weights.shape
    if vocab % CDF_BLOCK:
        weights = torch.nn.functional.pad(weights, (0, CDF_BLOCK - vocab % CDF_BLOCK))
    blocks = weights.view(rows, -1, CDF_BLOCK)
    block_cdf = blocks.sum(-1).cumsum(-1)
    below = 1.0 - 2.0**-20  # strictly below a total despite rounding
    target = torch.minimum(u * block_cdf[:, -1:], block_cdf[:, -1:] * below)
    block = torch.searchsorted(block_cdf, target, right=True).clamp_max(block_cdf.shape[1] - 1)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_min(0)), 0.0)
    inner = blocks.gather(1, block[:, :, None].expand(rows, 1, CDF_BLOCK)).squeeze(1).cumsum(-1)
    rest = torch.minimum(target - before, inner[:, -1:] * below)
    index = torch.searchsorted(inner, rest, right=True).clamp_max(CDF_BLOCK - 1)
    return (block * CDF_BLOCK + index).squeeze(-1)


def next_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float):
    """(token, untempered log-prob) per row of `logits` [B, V], drawn at `temperature` with u."""
    shifted = logits.float()
    shifted = shifted - shifted.amax(-1, keepdim=True)
    weights = shifted.exp()
    log_total = weights.sum(-1).log()
    if temperature != 1.0:  # unnormalised tempered probabilities; inverse_cdf normalises
        weights = shifted.mul(1.0 / temperature).exp_()
    tokens = inverse_cdf(weights, u)
    return tokens, shifted.gather(-1, tokens[:, None]).squeeze(-1) - log_total


NEXT_TOKENS = MaybeCompiled(next_tokens)
COMPACT_BELOW = 0.75  # drop finished rows once fewer than this fraction of the batch still run


@torch.no_grad()
def _sample_batch(
    model,
    prompts: list[list[int]],
    num_samples: int,
    lengths: torch.Tensor,
    *,
    temperature: float,
    eos_ids: torch.Tensor,
    pad_token_id: int,
    generator: torch.Generator | None,
    compile: bool,
) -> tuple[list[list[int]], torch.Tensor]:
    """`num_samples` completions per prompt (rows prompt-major); returns (tokens, token logps).

    Each prompt is run through the model once and its cache repeated for its samples; rows
    that finished leave the batch once fewer than COMPACT_BELOW of them still run.
    """
    device = model_device(model)
    ids, prompt_mask, positions = left_pad(prompts, pad_token_id, device)
    width = ids.shape[1]
    steps = int(lengths.max())
    decoder = new_decoder(model, prompt_mask, width + steps, compile)
    logits = decoder.prefill(ids, prompt_mask, positions)
    if num_samples > 1:
        decoder.repeat(num_samples)
        logits = logits.repeat_interleave(num_samples, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(num_samples, dim=0)
    batch = prompt_mask.shape[0]
    next_pos = prompt_mask.sum(-1, keepdim=True)  # position of each row's first new token
    lengths = lengths.to(device)

    tokens = torch.full((batch, steps), pad_token_id, dtype=torch.long, device=device)
    logps = torch.zeros((batch, steps), dtype=torch.float32, device=device)
    active = torch.arange(batch, device=device)  # rows still in the forward pass
    running = torch.ones(batch, dtype=torch.bool, device=device)  # per active row: not finished
    for step in range(steps):
        u = _uniforms(len(active), device, generator)
        if compile:
            mark_dynamic(logits, 0), mark_dynamic(u, 0)
        tok, picked = NEXT_TOKENS(logits, u, temperature, compile=compile)
        tok = torch.where(running, tok, pad_token_id)
        tokens[active, step] = tok
        logps[active, step] = torch.where(running, picked, 0.0)
        running &= ~torch.isin(tok, eos_ids) & (step + 1 < lengths[active])
        n_running = int(running.sum())
        if step + 1 == steps or n_running == 0:
            break
        if n_running < COMPACT_BELOW * len(active):
            keep = running.nonzero().squeeze(-1)
            decoder.select(keep)
            active, running, tok, next_pos = (t[keep] for t in (active, running, tok, next_pos))
        logits = decoder.step(tok, next_pos + step, width + step)

    counts = _completion_lengths(tokens, lengths, eos_ids)
    rows = tokens.cpu().tolist()
    return [row[:n] for row, n in zip(rows, counts.tolist(), strict=True)], logps.cpu()


def _completion_lengths(tokens: torch.Tensor, lengths: torch.Tensor, eos_ids: torch.Tensor):
    """Tokens kept per row: up to and including the first EOS, at most the row's length."""
    steps = tokens.shape[1]
    is_eos = torch.isin(tokens, eos_ids)
    first_eos = torch.where(is_eos.any(-1), is_eos.float().argmax(-1) + 1, steps)
    return torch.minimum(first_eos, lengths.clamp_max(steps))


def _check_args(model, prompt_ids, num_samples, temperature, min_new_tokens, max_new_tokens):
    """One-line errors for settings that cannot work."""
    if num_samples < 1:
        raise ConfigError(f"`num_samples` ({num_samples}) must be >= 1.")
    if not temperature > 0:
        raise ConfigError(
            f"`generation.temperature` ({temperature}) must be > 0; use a small value such as "
            "0.01 for near-greedy decoding."
        )
    if not 1 <= min_new_tokens <= max_new_tokens:
        raise ConfigError(
            f"`generation.min_new_tokens` ({min_new_tokens}) must lie in "
            f"[1, generation.max_new_tokens ({max_new_tokens})]; lower it."
        )
    if any(len(p) == 0 for p in prompt_ids):
        raise ConfigError("A prompt has 0 tokens; encode prompts with `encode_prompts`.")
    limit = context_length(model)
    longest = max((len(p) for p in prompt_ids), default=0)
    if limit is not None and longest + max_new_tokens > limit:
        raise ConfigError(
            f"`generation.max_new_tokens` ({max_new_tokens}) + the longest prompt ({longest} "
            f"tokens) exceeds the model's context of {limit} tokens; lower max_new_tokens or "
            "cut prompts shorter."
        )


def sample_completions(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    *,
    num_samples: int = 2,
    temperature: float = 0.7,
    min_new_tokens: int = 16,
    max_new_tokens: int = 24,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    autocast_dtype: torch.dtype | None = None,
    compile: bool = False,
    stop: Sequence[str] = (),
) -> list[list[Completion]]:
    """`num_samples` completions per prompt; result[i][j] is prompt i's j-th sample.

    Each completion's length limit is drawn uniformly from [min_new_tokens, max_new_tokens];
    it stops there, at any EOS / end-of-turn id (kept in `token_ids`), or after the token that
    completes a `stop` string (tokens kept, text cut before it; see `stopping.py`; sampling
    runs on to the row's limit and the tail is dropped). `logp` is the summed log-prob of its
    tokens under the untempered policy. `batch_size` counts completions per forward pass
    (batch_size // num_samples prompts, at least one). Prompts are never cut: a prompt too long
    for the context plus max_new_tokens raises ConfigError. `compile` runs decode steps through
    `torch.compile` (once per process, ~10 s on CPU; worth it for thousands of completions).
    """
    _check_args(model, prompt_ids, num_samples, temperature, min_new_tokens, max_new_tokens)
    if batch_size < 1:
        raise ConfigError(f"`generation.batch_size` ({batch_size}) must be >= 1.")
    if not prompt_ids:
        return []
    gen_device = generator.device if generator is not None else "cpu"
    lengths = (
        torch.randint(  # row i * num_samples + j: prompt i's j-th sample
            min_new_tokens,
            max_new_tokens + 1,
            (len(prompt_ids) * num_samples,),
            generator=generator,
            device=gen_device,
        )
        .cpu()
        .view(len(prompt_ids), num_samples)
    )
    eos_list = eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_list or [0])[0]
    device = model_device(model)
    eos_ids = torch.tensor(eos_list, dtype=torch.long, device=device)
    prompts_per_batch = max(1, batch_size // num_samples)

    results: list[list[tuple[list[int], torch.Tensor]]] = [[] for _ in prompt_ids]
    was_training = model.training
    model.eval()  # dropout off while sampling; restored below
    try:
        with autocast_context(device, autocast_dtype):
            for idx in length_sorted_batches([len(p) for p in prompt_ids], prompts_per_batch):
                toks, token_logps = _sample_batch(
                    model,
                    [prompt_ids[i] for i in idx],
                    num_samples,
                    lengths[idx].reshape(-1),
                    temperature=temperature,
                    eos_ids=eos_ids,
                    pad_token_id=pad,
                    generator=generator,
                    compile=compile,
                )
                for row, t in enumerate(toks):
                    results[idx[row // num_samples]].append((t, token_logps[row]))
    finally:
        model.train(was_training)

    eos_set = set(eos_list)

    def completion(toks: list[int], token_logps: torch.Tensor) -> Completion:
        body = toks[:-1] if toks and toks[-1] in eos_set else toks
        keep = stop_length(tokenizer, body, stop)
        if keep is None:
            text = tokenizer.decode(body, skip_special_tokens=True)
            return Completion(text, tuple(toks), float(token_logps.sum()))
        text = cut_at_stop(tokenizer.decode(body[:keep], skip_special_tokens=True), stop)
        return Completion(text, tuple(body[:keep]), float(token_logps[:keep].sum()))

    logger.debug("sampling %d x %d completions", len(prompt_ids), num_samples)
    return [[completion(t, lp) for t, lp in row] for row in results]
