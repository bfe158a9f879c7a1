"""Cutting every IMDB train review to an 8-16 token prompt: apl's prefix-only cut vs the peers.

Peers, measured in the same run on the same tokenizer:
  full-encode: `tokenizer(reviews)` on whole reviews, then decode the first L tokens (naive,
               and not boundary-safe: about half of those prompts end inside a word);
  hf-call:     apl's algorithm but through `tokenizer(prefixes, return_offsets_mapping=True)`
               instead of the Rust backend's `encode_batch`.
Prints seconds and ratios (peer / apl), plus how many prompts of each end inside a word.

    python benchmarks/prompt_truncation.py [--vocab-size 8192] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def best_of(repeats: int, fn):
    """Fastest wall time of `repeats` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    """Run the comparison and print one line per method."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=8192)  # the shipped model's vocabulary
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from apl.data import truncation
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.pretrain.tokenizer import train_tokenizer

    reviews = [r.text for r in load_imdb_reviews("train") if len(r.text) > 200]
    tok = train_tokenizer(reviews[:5000], vocab_size=args.vocab_size)
    rng = random.Random(0)
    lengths = [rng.randint(8, 16) for _ in reviews]

    def full_encode():
        ids = tok(reviews, add_special_tokens=False)["input_ids"]
        return [tok.decode(i[:n]) for i, n in zip(ids, lengths, strict=True)]

    def hf_call(texts):
        enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
        return [enc.encodings[j] for j in range(len(texts))]

    class CallBackend:  # routes apl's encode_batch through the transformers call
        pre_tokenizer = tok.backend_tokenizer.pre_tokenizer

        @staticmethod
        def encode_batch(texts, add_special_tokens=False):
            return hf_call(texts)

    class ViaCall:
        backend_tokenizer = CallBackend()

        def __call__(self, texts, add_special_tokens=False):
            return tok(texts, add_special_tokens=add_special_tokens)

    apl_s, ours = best_of(args.repeats, lambda: truncation.truncate_prompts(reviews, lengths, tok))
    full_s, naive = best_of(args.repeats, full_encode)
    call_s, via_call = best_of(
        args.repeats, lambda: truncation.truncate_prompts(reviews, lengths, ViaCall())
    )
    assert via_call == ours

    def inside_word(prompts):
        return sum(
            t[len(p) - 1 : len(p) + 1].isalpha() and len(t[len(p) - 1 : len(p) + 1]) == 2
            for t, p in zip(reviews, prompts, strict=True)
        )

    print(f"{len(reviews)} reviews, vocab {args.vocab_size}, best of {args.repeats}")
    rows = [
        ("apl prefix cut", apl_s, f"prompts ending inside a word: {inside_word(ours)}"),
        ("full-encode", full_s, f"prompts ending inside a word: {inside_word(naive)}"),
        ("hf-call", call_s, "(same prompts as apl)"),
    ]
    for name, seconds, note in rows:
        print(f"{name:<15}: {seconds:6.2f} s  {seconds / apl_s:.2f}x  {note}")


if __name__ == "__main__":
    main()
