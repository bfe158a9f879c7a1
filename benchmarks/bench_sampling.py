"""Completions/s: apl's KV-cache sampler against `model.generate`, same model/prompts/settings.

Peers, measured interleaved in one run (median of --repeats after a warm-up):
  generate:        `model.generate(do_sample=True, temperature, top_k=0, top_p=1, max_new_tokens=N)`
                   on left-padded prompts, the model's own attention (SDPA) and DynamicCache;
  generate eager:  the same with the model switched to eager attention (what apl's decode
                   steps use), to show that this setting alone does not close the gap;
  apl:             `sample_completions` with min=max=N new tokens (fixed-shape decode steps);
  apl compiled:    the same with `compile=True` (timed after its first call; the first call,
                   compile included, from an empty inductor cache is printed apart);
  apl dynamic:     apl's fallback decoder (DynamicCache, 2D masks, the model's attention);
  apl <rev>:       with --baseline REV, apl's sampler as it was at git revision REV.
fp32 and bf16 autocast, for each batch size. Then the paper's IMDB setting (64 prompts x 2
samples, T=0.7, 16-24 new tokens per completion; `generate` samples 24 and would be cut).
Prints completions/s and ratios against generate.

    python benchmarks/bench_sampling.py [--batch-sizes 64 256] [--new-tokens 48] [--repeats 5]
        [--threads 1] [--baseline e96e839] [--precisions fp32 bf16] [--settings paper batch]
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# An empty inductor cache, so the printed compile time is what a fresh machine pays.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="apl-bench-inductor-"))

import torch

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "src" / "apl" / "assets" / "imdb-gpt2"


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


def sampler_at(rev: str):
    """apl's `sampling` module as it was at git revision `rev` (with that revision's helpers)."""
    package = Path(tempfile.mkdtemp(prefix="apl-baseline-")) / "_apl_baseline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("sampling", "batching", "decoding"):
        show = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:src/apl/policy/{name}.py"],
            capture_output=True,
            text=True,
            check=False,
        )
        if show.returncode == 0:  # decoding.py did not exist before the fixed-shape decoder
            source = show.stdout.replace("apl.policy.batching", "_apl_baseline.batching")
            source = source.replace("apl.policy.decoding", "_apl_baseline.decoding")
            (package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(package.parent))
    return importlib.import_module("_apl_baseline.sampling")


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


def _generate_fn(
    model, tokenizer, prompts, new_tokens, temperature, dtype, num_samples=1, attention=None
):
    from apl.policy.batching import autocast_context, left_pad

    ids, mask, _ = left_pad(prompts, tokenizer.pad_token_id)

    def run():
        previous = model.config._attn_implementation
        if attention is not None:
            model.config._attn_implementation = attention
        try:
            with torch.no_grad(), autocast_context(ids.device, dtype):
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=new_tokens,
                    num_return_sequences=num_samples,
                    pad_token_id=tokenizer.pad_token_id,
                )
        finally:
            model.config._attn_implementation = previous

    return run


def _apl_fn(
    model, tokenizer, prompts, lengths, temperature, dtype, num_samples=1, sampling=None, **kwargs
):
    from apl.policy import decoding

    if sampling is None:
        from apl.policy import sampling
    dynamic = kwargs.pop("dynamic", False)
    supports = decoding.supports_slot_decoding

    def run():
        # "dynamic" makes apl take its fallback decoder, as for a sliding-window model.
        if dynamic:
            decoding.supports_slot_decoding = lambda model: False
        try:
            sampling.sample_completions(
                model,
                tokenizer,
                prompts,
                num_samples=num_samples,
                temperature=temperature,
                min_new_tokens=lengths[0],
                max_new_tokens=lengths[1],
                batch_size=len(prompts) * num_samples,
                generator=torch.Generator().manual_seed(0),
                autocast_dtype=dtype,
                **kwargs,
            )
        finally:
            decoding.supports_slot_decoding = supports

    return run


def _report(label: str, completions: int, secs: dict[str, float]) -> None:
    rate = {k: completions / v for k, v in secs.items()}
    cells = ", ".join(f"{k} {v:6.1f}/s" for k, v in rate.items())
    ratios = ", ".join(
        f"{k} {v / rate['generate']:.2f}x" for k, v in rate.items() if k != "generate"
    )
    print(f"{label}: {cells} | vs generate: {ratios}", flush=True)


def _peers(model, tokenizer, prompts, lengths, t, dtype, samples, baseline):
    """The functions timed side by side for one setting."""
    fns = {
        "generate": _generate_fn(model, tokenizer, prompts, lengths[1], t, dtype, samples),
        "generate eager": _generate_fn(
            model, tokenizer, prompts, lengths[1], t, dtype, samples, attention="eager"
        ),
        "apl": _apl_fn(model, tokenizer, prompts, lengths, t, dtype, samples),
        "apl compiled": _apl_fn(
            model, tokenizer, prompts, lengths, t, dtype, samples, compile=True
        ),
        "apl dynamic": _apl_fn(model, tokenizer, prompts, lengths, t, dtype, samples, dynamic=True),
    }
    if baseline is not None:
        fns[f"apl {baseline[0]}"] = _apl_fn(
            model, tokenizer, prompts, lengths, t, dtype, samples, sampling=baseline[1]
        )
    return fns


DTYPES = {"fp32": None, "bf16": torch.bfloat16}  # autocast dtype
SETTINGS = ("paper", "batch")


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print one line per (setting, dtype)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64])
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=5)
    # One thread: on a shared 2-core box two intra-op threads stall each other; 2 when quiet.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", default=None, help="git revision of apl to time as well")
    # fp32 alone where the CPU has no bf16 support (there bf16 autocast is emulated, and slow).
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=DTYPES)
    parser.add_argument("--settings", nargs="+", default=["paper", "batch"], choices=SETTINGS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer, what = load_default_model()
    baseline = (args.baseline, sampler_at(args.baseline)) if args.baseline else None
    print(f"model: {what}; {machine_note()}")
    print(f"T={args.temperature}, top_k=0, top_p=1, median of {args.repeats}")
    dtypes = [(name, DTYPES[name]) for name in args.precisions]
    # The paper's IMDB setting: 64 prompts x 2 samples, 16-24 new tokens drawn per completion.
    # `generate` has one length per call, so it samples 24 and the caller cuts each completion.
    settings = [("paper 64x2, 16-24 tokens", 64, 2, (16, 24))] if "paper" in args.settings else []
    n = args.new_tokens
    if "batch" in args.settings:
        settings += [(f"batch {b}, {n} tokens", b, 1, (n, n)) for b in args.batch_sizes]
    for label, prompts_n, samples, lengths in settings:
        prompts = imdb_prompts(tokenizer, prompts_n)
        for name, dtype in dtypes:
            peers = _peers(
                model, tokenizer, prompts, lengths, args.temperature, dtype, samples, baseline
            )
            start = time.perf_counter()
            peers["apl compiled"]()
            first = time.perf_counter() - start
            print(f"{label} {name}: apl compiled first call {first:.1f} s (compiles when new)")
            secs = median_time(peers, args.repeats)
            _report(f"{label} {name}", prompts_n * samples, secs)
    print(f"done; {machine_note()}")


if __name__ == "__main__":
    sys.exit(main())
