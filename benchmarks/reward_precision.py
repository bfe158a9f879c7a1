"""Implicit-reward noise and cost: the policy's log-probs from the sampler vs from the scorer.

Precision (policy == reference, so every true reward is 0): --completions completions of the
shipped model (prompts x 2, the run's generation settings) in --dtype autocast, then
  before: |sampler logp - reference logp| (the old reward: incremental decoding vs full forward);
  other batches: the policy through the same scoring routine but 16 rows at a time, shuffled;
  after:  |policy logp - reference logp| from `ReferenceModel.paired_logps` (same batches).
Cost: the extra policy scoring pass per round on --pairs pairs (the default run's S = 512), in
the default run's precision (autocast auto): a fresh `ReferenceModel.logps` (reference only, the
old cost) against `paired_logps` (reference + policy), interleaved, median of --repeats.

    python benchmarks/reward_precision.py [--completions 128] [--dtype bf16] [--pairs 512]
        [--repeats 3] [--threads 1] [--skip-precision] [--skip-cost]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from bench_sampling import machine_note

from apl.config import GenerationConfig, ModelConfig
from apl.data import TASKS
from apl.policy.model import load_model
from apl.policy.reference import ReferenceModel
from apl.policy.scoring import completion_logps
from apl.policy.view import ModelPolicyView


def _completions(loaded, autocast, n_prompts: int, seed: int = 0):
    """(view, reference, prompts, completions): n_prompts train prompts x 2 samples."""
    prompts = TASKS.build("imdb", {}).load_prompts("train", loaded.tokenizer, seed=seed)
    prompts = prompts[:n_prompts]
    gen = GenerationConfig()
    reference = ReferenceModel.from_policy(
        loaded.model, loaded.tokenizer, autocast_dtype=autocast, batch_size=gen.batch_size
    )
    view = ModelPolicyView(
        loaded.model,
        loaded.tokenizer,
        reference,
        gen,
        beta=0.2,
        generator=torch.Generator().manual_seed(seed),
        autocast_dtype=autocast,
    )
    samples = view.sample(prompts, num_samples=2)
    rows = [p for p, s in zip(prompts, samples, strict=True) for _ in s]
    return view, reference, rows, [c for s in samples for c in s]


def precision(loaded, autocast, completions: int) -> None:
    """Print mean / max |policy - reference| before (sampler) and after (paired scoring)."""
    view, _, prompts, comps = _completions(loaded, autocast, completions // 2)
    policy, ref = (np.asarray(v) for v in view.policy_and_reference_logps(prompts, comps))
    sampler = np.asarray([c.logp for c in comps])
    # The same routine in other batches: 16 rows at a time, in shuffled order.
    order = np.random.default_rng(0).permutation(len(comps))
    shuffled = completion_logps(
        loaded.model,
        [list(ids) for ids in view.prompt_ids([prompts[i] for i in order])],
        [list(comps[i].token_ids) for i in order],
        batch_size=16,
        autocast_dtype=autocast,
        pad_token_id=loaded.tokenizer.pad_token_id,
    ).numpy()
    other = np.empty_like(shuffled)
    other[order] = shuffled
    rows = (
        ("before (sampler logp)", sampler),
        ("other batches (16, shuffled)", other),
        ("after (paired scoring)", policy),
    )
    for name, values in rows:
        diff = np.abs(values - ref)
        print(
            f"{name:30s} |policy - reference| over {len(comps)} completions "
            f"({autocast}): mean {diff.mean():.4f}, max {diff.max():.4f} nats; "
            f"reward noise beta*max = {0.2 * diff.max():.4f}"
        )


def cost(loaded, pairs: int, repeats: int) -> None:
    """Print the seconds of a reference-only pass and of the paired pass over `pairs` pairs."""
    autocast = loaded.autocast_dtype
    view, _, prompts, comps = _completions(loaded, autocast, pairs, seed=1)
    ids = view.prompt_ids(prompts)
    tokens = [c.token_ids for c in comps]
    times: dict[str, list[float]] = {"reference only": [], "policy + reference": []}
    for _ in range(repeats + 1):  # the first round warms up
        for name in times:
            fresh = ReferenceModel.from_policy(
                loaded.model, loaded.tokenizer, autocast_dtype=autocast, batch_size=64
            )
            start = time.perf_counter()
            if name == "reference only":
                fresh.logps(ids, tokens)
            else:
                fresh.paired_logps(loaded.model, ids, tokens)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(ts[1:]) for name, ts in times.items()}
    extra = med["policy + reference"] - med["reference only"]
    print(
        f"{pairs} pairs ({2 * pairs} completions), autocast {autocast}: reference only "
        f"{med['reference only']:.2f} s, policy + reference {med['policy + reference']:.2f} s; "
        f"extra per round {extra:.2f} s (ratio {med['policy + reference'] / med['reference only']:.2f})"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the precision and cost measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=128)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # one thread: no spin-waiting on a busy machine
    torch.manual_seed(0)
    print(machine_note())
    if not args.skip_precision:
        loaded = load_model(ModelConfig(bf16=args.dtype == "bf16"))
        precision(loaded, loaded.autocast_dtype, args.completions)
    if not args.skip_cost:
        cost(load_model(ModelConfig()), args.pairs, args.repeats)


if __name__ == "__main__":
    main()
