"""DPO pairs/s: apl's DPOTrainer against TRL's DPOTrainer, same model, pairs and precision.

Both peers train the default architecture (4 layers, width 256, 8k BPE; the shipped imdb-gpt2
if present, else a random init) on the same labelled pairs with batch 64, Adam, dropout off,
and reference log-probs computed once before training (TRL: `precompute_ref_log_probs=True`;
apl: the cached `ReferenceModel`). TRL tokenises the text pairs (adding EOS); apl then trains
on exactly TRL's token ids. Only training is timed, in fp32 and bf16 autocast: each peer takes
one untimed warm-up step, then the peers' timed one-epoch runs alternate (the machine may be
shared, so each sees the same background load). Peers:

  apl                 as `apl run` trains: shared-prompt packing, forward chunks, the fused
                      log-softmax gather, and GPT-2's GELU as one kernel (as `load_model` does);
  apl -<change>       the same with one change taken away, so each change's gain is measured;
  apl before          all four taken away (the trainer as it was before issue 16);
  apl +compile        (with --compile) the model's forward through torch.compile (inductor);
  TRL                 TRL 1.16's DPOTrainer on the model as `from_pretrained` loads it;
  TRL fused gelu      (with --trl-fused-gelu) TRL on the same one-kernel GELU as apl.

It also measures this machine's matmul peak (GFLOP/s of `torch.mm`, best of the model's own
matmul shapes and a 2048^3 square, before each round of timed runs and after the last; the
best of all) and prints each peer's share of the limit it implies, at the issue's cost of
6 x parameters x tokens FLOP per pair.

    python benchmarks/bench_dpo.py [--pairs 256] [--epochs 1] [--repeats 3] [--threads 2]
        [--no-ablations] [--compile] [--trl-fused-gelu]

`benchmarks/calibrate_dpo.py` sweeps learning rates and epochs for the DPO defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampling import load_default_model  # noqa: E402


def text_pairs(n: int, seed: int = 0, sentiment: bool = False) -> dict[str, list[str]]:
    """Prompts of 6-12 words from IMDB reviews; completions of 12-18 words from other reviews.

    With `sentiment` (calibrate_dpo.py's snippet task) chosen comes from a positive train review and
    rejected from a negative one; otherwise all three come from test reviews, in order.
    """
    from apl.data.imdb_reviews import load_imdb_reviews

    rng = random.Random(seed)
    split = "train" if sentiment else "test"
    reviews = [r for r in load_imdb_reviews(split) if len(r.text) > 200]
    if sentiment:
        pos = [r.text.split() for r in reviews if r.label == 1]
        neg = [r.text.split() for r in reviews if r.label == 0]
        mixed = [w for two in zip(pos[n : 2 * n], neg[n : 2 * n]) for w in two]
        sources = (mixed, pos, neg)
    else:
        words = [r.text.split() for r in reviews][: 3 * n]
        sources = (words, words[n:], words[2 * n :])
    out: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for i in range(n):
        out["prompt"].append(" ".join(sources[0][i][: rng.randint(6, 12)]))
        for key, src in (("chosen", sources[1][i]), ("rejected", sources[2][i])):
            start = rng.randint(0, max(0, len(src) - 18))
            out[key].append(" " + " ".join(src[start : start + rng.randint(12, 18)]))
    return out


def trl_trainer(model, tokenizer, data, bf16: bool, epochs: int, out_dir: str):
    """TRL's DPOTrainer with precomputed reference log-probs (the reference is not kept)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        output_dir=out_dir,
        beta=0.2,
        learning_rate=1e-6,
        loss_type=["sigmoid"],
        bf16=bf16,
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=64,
        num_train_epochs=epochs,
        precompute_ref_log_probs=True,
        save_strategy="no",
        logging_steps=10_000,
        disable_dropout=True,
        # TRL 1.16 defaults to gradient checkpointing (a second forward per step to save
        # activation memory a 5M-parameter model does not need): off, TRL runs at its fastest.
        gradient_checkpointing=False,
        lr_scheduler_type="constant",
        warmup_steps=0,
    )
    return DPOTrainer(
        model, args=args, train_dataset=Dataset.from_dict(data), processing_class=tokenizer
    )


def preferences_from_trl(dataset, data, tokenizer):
    """apl Preferences with exactly the token ids TRL trains on (prompt text re-encodes to them)."""
    from apl.policy.sampling import encode_prompts
    from apl.types import Completion, Preference, Prompt

    prefs = []
    encoded = encode_prompts(tokenizer, data["prompt"])
    for i, row in enumerate(dataset):
        assert encoded[i] == row["prompt_ids"], f"pair {i}: prompt ids differ from TRL's"
        prefs.append(
            Preference(
                prompt=Prompt(uid=str(i), text=data["prompt"][i]),
                chosen=Completion(data["chosen"][i], tuple(row["chosen_ids"])),
                rejected=Completion(data["rejected"][i], tuple(row["rejected_ids"])),
            )
        )
    return prefs


def quiet(trainer):
    """Drop the Trainer's console callbacks so the table is the only output."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # autocast dtype
ABLATIONS = {  # peer -> the changes it leaves out
    "apl -chunks": {"chunks"},
    "apl -fused gather": {"gather"},
    "apl -fused gelu": {"gelu"},
    "apl -shared prompt": {"shared"},
    "apl before": {"chunks", "gather", "gelu", "shared"},
}


def matmul_peak(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """GFLOP/s of `torch.mm` at this thread count: the best of the model's shapes and 2048^3."""
    shapes = [(4096, 256, 768), (4096, 256, 1024), (4096, 1024, 256), (2048, 256, 8192)]
    shapes.append((2048, 2048, 2048))
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        torch.mm(a, b)
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            torch.mm(a, b)
            calls += 1
        best = max(best, 2 * m * k * n * calls / (time.perf_counter() - start) / 1e9)
    return best


def apl_peer(model, tokenizer, prefs, autocast, epochs: int, without: set[str], compile: bool):
    """A warmed-up apl DPOTrainer on `model` (a copy); returns a function that runs one epoch."""
    from apl.config import DPOConfig
    from apl.policy import pair_scoring
    from apl.policy.model import fuse_gelu
    from apl.policy.reference import ReferenceModel
    from apl.training.dpo_trainer import DPOTrainer

    if "gelu" not in without:
        fuse_gelu(model)
    if compile:
        model.compile(dynamic=True)
    reference = ReferenceModel.from_policy(model, tokenizer, autocast_dtype=autocast)
    prefs = reference.fill(prefs)
    config = DPOConfig(
        mode="continue",
        learning_rate=1e-6,
        per_device_train_batch_size=64,
        num_train_epochs=1,
        max_steps=1,
    )
    trainer = DPOTrainer(model, tokenizer, config, reference=reference, autocast_dtype=autocast)
    trainer.collator.shared_prompt &= "shared" not in without
    if "chunks" in without:
        trainer.collator.max_tokens = None
    fused = pair_scoring.gather_log_softmax

    def plain(logits, rows, tokens):
        return torch.log_softmax(logits.float(), dim=-1)[rows, tokens]

    def run() -> None:
        if "gather" in without:
            pair_scoring.gather_log_softmax = plain
        try:
            trainer.train(prefs)
        finally:
            pair_scoring.gather_log_softmax = fused

    start = time.perf_counter()
    run()  # warm-up step (compiles, with --compile)
    first = time.perf_counter() - start
    trainer.config = config.model_copy(update={"num_train_epochs": epochs, "max_steps": -1})
    return run, first


def measure(base, tokenizer, data, autocast, args) -> dict:
    """Set every peer up and warm it, then time `args.repeats` interleaved epochs of each."""
    with tempfile.TemporaryDirectory(prefix="bench_dpo_") as out:
        peers: dict = {}
        trl_models = {"TRL": load_copy(base)}
        if args.trl_fused_gelu:
            from apl.policy.model import fuse_gelu

            trl_models["TRL fused gelu"] = load_copy(base)
            fuse_gelu(trl_models["TRL fused gelu"])
        for name, model in trl_models.items():
            start = time.perf_counter()
            trl = quiet(trl_trainer(model, tokenizer, data, autocast is not None, args.epochs, out))
            trl.args.max_steps = 1
            trl.train()  # warm-up step
            trl.args.max_steps = -1
            peers[name] = (trl.train, time.perf_counter() - start)
        prefs = preferences_from_trl(trl.train_dataset, data, tokenizer)
        variants = {"apl": set()} | ({} if args.no_ablations else ABLATIONS)
        for name, without in variants.items():
            peers[name] = apl_peer(
                load_copy(base), tokenizer, prefs, autocast, args.epochs, without, False
            )
        if args.compile:
            peers["apl +compile"] = apl_peer(
                load_copy(base), tokenizer, prefs, autocast, args.epochs, set(), True
            )
        rates: dict[str, list[float]] = {name: [] for name in peers}
        peak = 0.0
        for _ in range(args.repeats):
            peak = max(peak, matmul_peak(autocast or torch.float32))  # best of quiet moments
            for name, (run, _) in peers.items():
                start = time.perf_counter()
                run()
                rates[name].append(len(prefs) * args.epochs / (time.perf_counter() - start))
        tokens = sum(
            len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"])
            for r in trl.train_dataset
        )
    setup = {name: first for name, (_, first) in peers.items()}
    peak = max(peak, matmul_peak(autocast or torch.float32))
    return {"rates": rates, "setup": setup, "tokens": tokens, "peak": peak}


def main() -> None:
    """Run every peer in fp32 and bf16 and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per peer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ablations", action="store_true", help="time apl and TRL only")
    parser.add_argument("--compile", action="store_true", help="also apl with torch.compile")
    parser.add_argument("--trl-fused-gelu", action="store_true", help="also TRL on fused GELU")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    base, tokenizer, desc = load_default_model()
    data = text_pairs(args.pairs)
    params = sum(p.numel() for p in base.parameters())
    print(
        f"model: {desc}, {params / 1e6:.2f}M params; {args.pairs} pairs, batch 64, "
        f"{args.epochs} epoch(s) x {args.repeats} interleaved runs, {args.threads} threads, "
        f"torch {torch.__version__}; load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for name in args.precisions:
        result = measure(base, tokenizer, data, PRECISIONS[name], args)
        print_table(name, result, params, args.pairs)
    print(
        f"\nload average after: {os.getloadavg()[0]:.2f} (pairs/s: median of the runs; "
        "setup s: the untimed warm-up step, with TRL's tokenising and "
        "precompute_ref_log_probs, apl's compile with --compile)"
    )


def print_table(name: str, result: dict, params: int, pairs: int) -> None:
    """One precision's peers: pairs/s, ratio to TRL, share of the matmul limit, setup time."""
    tokens = result["tokens"] / pairs
    gflop = 6 * params * tokens / 1e9
    limit = result["peak"] / gflop
    print(
        f"\n{name}: {tokens:.1f} tokens per pair, 6 x params x tokens = {gflop:.2f} GFLOP per "
        f"pair; matmul peak {result['peak']:.0f} GFLOP/s -> limit {limit:.1f} pairs/s; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    trl = statistics.median(result["rates"]["TRL"])
    print(f"{'peer':<20}{'pairs/s':>9}{'/ TRL':>8}{'of limit':>10}{'setup s':>9}")
    for peer, rates in result["rates"].items():
        rate = statistics.median(rates)
        print(
            f"{peer:<20}{rate:>9.1f}{rate / trl:>7.2f}x{rate / limit:>9.0%}"
            f"{result['setup'][peer]:>9.1f}",
            flush=True,
        )


def load_copy(model):
    """A fresh deep copy, so each run starts from the same weights."""
    import copy

    return copy.deepcopy(model).train()


if __name__ == "__main__":
    main()
