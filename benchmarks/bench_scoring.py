"""Sequences/s for sum log p(y|x): apl's scoring against the plain full-vocab peer, fp32 and bf16.

Peers, measured interleaved in one run (median of --repeats after a warm-up), same pairs:
  plain:  right-padded prompt+completion, `model(input_ids, attention_mask).logits`, then
          `log_softmax(logits.float())` over the full [B, T, V] and a gather (as most DPO code);
  apl:    `completion_logps` (no grad) / `sequence_logps` (with backward): logits only at the
          completion positions via `logits_to_keep`, log_softmax on those rows only.
Pairs: real IMDB test reviews cut to --tokens tokens, the first 8-16 of them the prompt.
Prints sequences/s, ratios against plain, and the fp32 logits bytes each path materialises.

    python benchmarks/bench_scoring.py [--pairs 128] [--tokens 64] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import sys

import torch
from bench_sampling import load_default_model, machine_note, median_time

from apl.policy.batching import autocast_context
from apl.policy.scoring import collate_pairs, completion_logps, sequence_logps


def imdb_pairs(tokenizer, n: int, tokens: int, seed: int = 0):
    """(prompts, completions): reviews cut to `tokens` tokens, the first 8..16 the prompt."""
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.policy.sampling import encode_prompts

    rng = random.Random(seed)
    texts = [r.text for r in load_imdb_reviews("test") if len(r.text) > 600][:n]
    prompts, completions = [], []
    for ids in encode_prompts(tokenizer, texts):
        cut = rng.randint(8, 16)
        prompts.append(ids[:cut])
        completions.append(ids[cut:tokens])
    return prompts, completions


def plain_logps(model, prompts, completions, pad_token_id):
    """The usual DPO-code path: full logits, full-vocab log_softmax, gather, mask, sum."""
    seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_token_id)
    attn = torch.zeros_like(ids)
    labels_mask = torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[row, : len(p) + len(c)] = torch.tensor(p + c)
        attn[row, : len(p) + len(c)] = 1
        labels_mask[row, len(p) : len(p) + len(c)] = 1
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return (logp * labels_mask[:, 1:]).sum(-1)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print one line per (mode, dtype)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer, what = load_default_model()
    pad = tokenizer.pad_token_id
    prompts, completions = imdb_pairs(tokenizer, args.pairs, args.tokens)
    bs = args.batch_size
    batches = [(prompts[i : i + bs], completions[i : i + bs]) for i in range(0, len(prompts), bs)]
    print(f"model: {what}; {machine_note()}")
    print(f"{len(prompts)} pairs of {args.tokens} tokens, batch {bs}, median of {args.repeats}")

    vocab = model.config.vocab_size
    comp_tokens = sum(map(len, completions[:bs]))
    print(
        f"fp32 logits per batch: plain {2 * bs * (args.tokens - 1) * vocab * 4 / 2**20:.0f} MiB "
        f"(logits + log_softmax), apl {2 * comp_tokens * vocab * 4 / 2**20:.0f} MiB"
    )
    with torch.no_grad():  # both paths agree before they are timed
        a = plain_logps(model, *batches[0], pad)
        b = completion_logps(model, *batches[0], pad_token_id=pad)
    print(f"max |plain - apl| = {(a - b).abs().max().item():.2e}")

    def plain(dtype, grad):
        def run():
            with torch.set_grad_enabled(grad), autocast_context(torch.device("cpu"), dtype):
                for p, c in batches:
                    out = plain_logps(model, p, c, pad)
                    if grad:
                        out.sum().backward()

        return run

    def apl(dtype, grad):
        def run():
            if not grad:
                completion_logps(
                    model,
                    prompts,
                    completions,
                    batch_size=bs,
                    autocast_dtype=dtype,
                    pad_token_id=pad,
                )
                return
            with autocast_context(torch.device("cpu"), dtype):
                for p, c in batches:
                    sequence_logps(model, **collate_pairs(p, c, pad)).sum().backward()

        return run

    for mode, grad in (("score (no grad)", False), ("forward+backward", True)):
        apl_rate = {}
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            secs = median_time({"plain": plain(dtype, grad), "apl": apl(dtype, grad)}, args.repeats)
            rate = {k: len(prompts) / v for k, v in secs.items()}
            apl_rate[name] = rate["apl"]
            print(
                f"{mode} {name}: plain {rate['plain']:6.1f} seq/s, apl {rate['apl']:6.1f} seq/s "
                f"| apl / plain {rate['apl'] / rate['plain']:.2f}x",
                flush=True,
            )
            model.zero_grad(set_to_none=True)
        print(f"{mode}: apl bf16 / apl fp32 {apl_rate['bf16'] / apl_rate['fp32']:.2f}x")
    print(f"done; {machine_note()}")


if __name__ == "__main__":
    sys.exit(main())
