"""DPO pairs/s: apl's DPOTrainer against TRL's DPOTrainer, same model, pairs and precision.

Both peers train the default architecture (4 layers, width 256, 8k BPE; the shipped imdb-gpt2
if present, else a random init) on the same labelled pairs with batch 64, Adam, dropout off,
and reference log-probs computed once before training (TRL: `precompute_ref_log_probs=True`;
apl: the cached `ReferenceModel`). TRL tokenises the text pairs (adding EOS); apl then trains
on exactly TRL's token ids. Only training is timed, in fp32 and bf16 autocast:
each peer takes one untimed warm-up step, then the peers' timed runs alternate (the machine
may be shared, so each sees the same background load). Prints pairs/s and the apl/TRL ratio.

    python benchmarks/bench_dpo.py [--pairs 256] [--epochs 1] [--repeats 3] [--threads 2]

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


def measure(*args) -> dict:
    """`_measure` in a scratch output directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench_dpo_") as out:
        return _measure(*args, out)


def _measure(
    model_apl, model_trl, tokenizer, data, autocast, epochs: int, repeats: int, out: str
) -> dict:
    """Set both peers up, warm each with one step, then time `repeats` interleaved runs each."""
    from apl.config import DPOConfig
    from apl.policy.reference import ReferenceModel
    from apl.training.dpo_trainer import DPOTrainer

    start = time.perf_counter()
    trl = quiet(trl_trainer(model_trl, tokenizer, data, autocast is not None, epochs, out))
    trl_init = time.perf_counter() - start  # tokenising + precomputing reference log-probs
    prefs = preferences_from_trl(trl.train_dataset, data, tokenizer)
    reference = ReferenceModel.from_policy(model_apl, tokenizer, autocast_dtype=autocast)
    start = time.perf_counter()
    prefs = reference.fill(prefs)
    apl_ref = time.perf_counter() - start
    config = DPOConfig(
        mode="continue",
        learning_rate=1e-6,
        per_device_train_batch_size=64,
        num_train_epochs=1,
        max_steps=1,
    )
    apl = DPOTrainer(model_apl, tokenizer, config, reference=reference, autocast_dtype=autocast)
    apl.train(prefs)  # warm-up step
    apl.config = config.model_copy(update={"num_train_epochs": epochs, "max_steps": -1})
    trl.args.max_steps = 1
    trl.train()  # warm-up step
    trl.args.max_steps = -1
    rates: dict[str, list[float]] = {"apl": [], "trl": []}
    for _ in range(repeats):
        for name, run in (("apl", lambda: apl.train(prefs)), ("trl", trl.train)):
            start = time.perf_counter()
            run()
            rates[name].append(len(prefs) * epochs / (time.perf_counter() - start))
    tokens = sum(
        len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"])
        for r in trl.train_dataset
    )
    return {"rates": rates, "apl_ref_s": apl_ref, "trl_init_s": trl_init, "tokens": tokens}


def main() -> None:
    """Run both peers in fp32 and bf16 and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed runs per peer")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    base, tokenizer, desc = load_default_model()
    data = text_pairs(args.pairs)
    results = {}
    for name, autocast in (("fp32", None), ("bf16", torch.bfloat16)):
        results[name] = measure(
            load_copy(base), load_copy(base), tokenizer, data, autocast, args.epochs, args.repeats
        )
    print(
        f"model: {desc}, {sum(p.numel() for p in base.parameters()) / 1e6:.1f}M params; "
        f"{args.pairs} pairs ({results['fp32']['tokens'] / args.pairs:.1f} tokens per pair), "
        f"batch 64, {args.epochs} epoch(s) x {args.repeats} interleaved runs, "
        f"{args.threads} threads"
    )
    print(
        f"{'precision':<10}{'apl pairs/s':>13}{'TRL pairs/s':>13}{'apl/TRL':>9}{'best/best':>11}"
        f"{'apl ref s':>11}{'TRL init s':>12}"
    )
    for name, r in results.items():
        apl, trl = statistics.median(r["rates"]["apl"]), statistics.median(r["rates"]["trl"])
        best = max(r["rates"]["apl"]) / max(r["rates"]["trl"])
        print(
            f"{name:<10}{apl:>13.1f}{trl:>13.1f}{apl / trl:>8.2f}x{best:>10.2f}x"
            f"{r['apl_ref_s']:>11.1f}{r['trl_init_s']:>12.1f}"
        )
    print(
        "(pairs/s: median of the runs; apl ref s: reference log-probs once; TRL init s: "
        "tokenise + precompute_ref_log_probs)"
    )


def load_copy(model):
    """A fresh deep copy, so each run starts from the same weights."""
    import copy

    return copy.deepcopy(model).train()


if __name__ == "__main__":
    main()
