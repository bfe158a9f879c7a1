"""Completions/s: apl's KV-cache sampler against `model.generate`, same model/prompts/settings.

Peers, measured interleaved in one run (median of --repeats after a warm-up):
  generate:       `model.generate(do_sample=True, temperature, top_k=0, top_p=1, max_new_tokens=N)`
                  on left-padded prompts (its default DynamicCache); rows stop at EOS in both;
  apl:            `sample_completions` with min=max=N new tokens (its preallocated KV cache);
  apl dynamic:    the same with transformers' DynamicCache, to show what preallocation buys.
fp32 and bf16 autocast, for each batch size. Then the paper's IMDB setting (64 prompts x 2
samples, T=0.7, 16-24 new tokens per completion; `generate` samples 24 and would be cut).
Prints completions/s and ratios against generate.

    python benchmarks/bench_sampling.py [--batch-sizes 64 256] [--new-tokens 48] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "src" / "apl" / "assets" / "imdb-gpt2"


def load_default_model():
    """(model, tokenizer, description): the shipped imdb-gpt2 if present, else a random init.

    The fallback is the default architecture (4 layers, width 256, 4 heads, ctx 128, 8k BPE
    trained on 3,000 IMDB reviews) with random weights, which practically never samples EOS.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (ASSET / "config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(ASSET, dtype=torch.float32).eval()
        return model, AutoTokenizer.from_pretrained(ASSET), f"pretrained {ASSET.name}"
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.pretrain.model_init import init_gpt2
    from apl.pretrain.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([r.text for r in load_imdb_reviews("train")[:3000]], 8192)
    return init_gpt2(tokenizer).eval(), tokenizer, "random-init default architecture"


def imdb_prompts(tokenizer, n: int, seed: int = 0) -> list[list[int]]:
    """`n` IMDB test reviews cut to their first L tokens, L uniform in 8..16 (as the paper)."""
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.policy.sampling import encode_prompts

    rng = random.Random(seed)
    reviews = [r.text for r in load_imdb_reviews("test") if len(r.text) > 200][:n]
    return [ids[: rng.randint(8, 16)] for ids in encode_prompts(tokenizer, reviews)]


def median_time(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, run interleaved after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine_note() -> str:
    """Threads and 1-minute load average, so a shared machine shows in the output."""
    return (
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, cpus={os.cpu_count()}, "
        f"load avg(1m)={os.getloadavg()[0]:.1f}"
    )


def _generate_fn(model, tokenizer, prompts, new_tokens, temperature, dtype, num_samples=1):
    from apl.policy.batching import autocast_context, left_pad

    ids, mask, _ = left_pad(prompts, tokenizer.pad_token_id)

    def run():
        with torch.no_grad(), autocast_context(ids.device, dtype):
            model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                top_k=0, top_p=1.0, max_new_tokens=new_tokens, num_return_sequences=num_samples,
                pad_token_id=tokenizer.pad_token_id,
            )

    return run


def _apl_fn(model, tokenizer, prompts, lengths, temperature, dtype, cache, num_samples=1):
    from transformers import DynamicCache

    from apl.policy import sampling
    from apl.policy.batching import new_kv_cache

    def run():
        # "dynamic" swaps apl's preallocated cache for transformers' default DynamicCache.
        if cache == "dynamic":
            sampling.new_kv_cache = lambda model, max_len: DynamicCache(config=model.config)
        try:
            sampling.sample_completions(
                model, tokenizer, prompts, num_samples=num_samples, temperature=temperature,
                min_new_tokens=lengths[0], max_new_tokens=lengths[1],
                batch_size=len(prompts) * num_samples,
                generator=torch.Generator().manual_seed(0), autocast_dtype=dtype,
            )
        finally:
            sampling.new_kv_cache = new_kv_cache

    return run


def _report(label: str, completions: int, secs: dict[str, float]) -> None:
    rate = {k: completions / v for k, v in secs.items()}
    cells = ", ".join(f"{k} {v:6.1f}/s" for k, v in rate.items())
    ratios = ", ".join(
        f"{k} / generate {v / rate['generate']:.2f}x" for k, v in rate.items() if k != "generate"
    )
    print(f"{label}: {cells} | {ratios}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print one line per (batch size, dtype)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=5)
    # One thread: on a shared 2-core box two intra-op threads stall each other; 2 when quiet.
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer, what = load_default_model()
    print(f"model: {what}; {machine_note()}")
    print(f"{args.new_tokens} new tokens, T={args.temperature}, top_k=0, top_p=1, "
          f"median of {args.repeats}")
    dtypes = (("fp32", None), ("bf16", torch.bfloat16))
    for batch in args.batch_sizes:
        prompts = imdb_prompts(tokenizer, batch)
        n, t = args.new_tokens, args.temperature
        for name, dtype in dtypes:
            fns = {
                "generate": _generate_fn(model, tokenizer, prompts, n, t, dtype),
                "apl": _apl_fn(model, tokenizer, prompts, (n, n), t, dtype, "preallocated"),
                "apl dynamic": _apl_fn(model, tokenizer, prompts, (n, n), t, dtype, "dynamic"),
            }
            _report(f"batch {batch:4d} {name}", batch, median_time(fns, args.repeats))
    # The paper's IMDB setting: 64 prompts x 2 samples, 16-24 new tokens drawn per completion.
    # `generate` has one length per call, so it samples 24 and the caller cuts each completion.
    prompts = imdb_prompts(tokenizer, 64)
    for name, dtype in dtypes:
        fns = {
            "generate": _generate_fn(model, tokenizer, prompts, 24, 0.7, dtype, num_samples=2),
            "apl": _apl_fn(model, tokenizer, prompts, (16, 24), 0.7, dtype, "preallocated", 2),
        }
        _report(f"paper 64x2, 16-24 tokens {name}", 128, median_time(fns, args.repeats))
    print(f"done; {machine_note()}")


if __name__ == "__main__":
    sys.exit(main())
