"""Learning-rate / epoch sweep for DPO on the small offline model (the paper's lr 1e-6 is for 1B+).

Two tasks, both bf16, batch 64, beta 0.2, every lr from the same theta_0:
  on-policy (default): the loop's situation. Two samples per IMDB train prompt (T=0.7, 16-24
      tokens) from the model itself, labelled by `imdb_judge`; after 1, 2, 3, 5, 10 epochs the
      policy samples one completion per test prompt (T=0.25) and the judge compares it with
      the initial model's completion for the same prompt: win-rate vs initial, as in the paper.
  snippets: chosen = words from a positive review, rejected = from a negative one; half the
      pairs held out (the trainer's own split); prints held-out reward accuracy and loss.

    python benchmarks/calibrate_dpo.py [--task on-policy] [--pairs 128] [--lrs 1e-6 1e-4 1e-3]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sampling import load_default_model  # noqa: E402

EPOCHS = (1, 2, 3, 5, 10)
BF16 = torch.bfloat16


def trainer_for(model, tokenizer, **options):
    """A bf16 DPOTrainer whose reference is `model` as it is now."""
    from apl.config import DPOConfig
    from apl.policy.reference import ReferenceModel
    from apl.training.dpo_trainer import DPOTrainer

    reference = ReferenceModel.from_policy(model, tokenizer, autocast_dtype=BF16)
    config = DPOConfig(**options)
    return DPOTrainer(model, tokenizer, config, reference=reference, autocast_dtype=BF16)


def on_policy(base, tokenizer, pairs: int, lrs: list[float], test_prompts: int = 128) -> None:
    """Win-rate vs the initial model after each of EPOCHS, per learning rate."""
    import apl.data  # noqa: F401  (registers the tasks)
    from apl.data.tasks import TASKS
    from apl.oracles.imdb_judge import ImdbJudge
    from apl.policy.sampling import encode_prompts, sample_completions
    from apl.types import Preference

    task, judge = TASKS.build("imdb", {}), ImdbJudge()
    train = task.load_prompts("train", tokenizer, seed=0)[:pairs]
    test = task.load_prompts("test", tokenizer, seed=0)[:test_prompts]

    def sample(model, prompts, k: int, temperature: float, seed: int):
        ids = encode_prompts(tokenizer, [p.text for p in prompts])
        generator = torch.Generator().manual_seed(seed)
        return sample_completions(
            model,
            tokenizer,
            ids,
            num_samples=k,
            temperature=temperature,
            batch_size=128,
            generator=generator,
            autocast_dtype=BF16,
        )

    def test_scores(model) -> np.ndarray:
        outs = sample(model, test, 1, 0.25, seed=123)
        return judge.score([p.text for p in test], [o[0].text for o in outs])[0]

    samples = sample(base, train, 2, 0.7, seed=0)
    n = len(train)
    scores, _ = judge.score(
        [p.text for p in train] * 2, [s[0].text for s in samples] + [s[1].text for s in samples]
    )
    prefs = [
        Preference(p, *((a, b) if scores[i] > scores[n + i] else (b, a)))
        for i, (p, (a, b)) in enumerate(zip(train, samples))
        if scores[i] != scores[n + i]
    ]
    initial = test_scores(base)
    print(
        f"{len(prefs)} on-policy pairs labelled by imdb_judge; {len(test)} test prompts; "
        f"cells: win-rate vs initial / train reward accuracy"
    )
    print(f"{'lr':<8}" + "".join(f"{'ep' + str(e):>13}" for e in EPOCHS) + "   s/epoch")
    for lr in lrs:
        model = copy.deepcopy(base)
        # `continue` + one epoch per call = consecutive epochs, with a look after each stop
        trainer = trainer_for(
            model, tokenizer, mode="continue", learning_rate=lr, num_train_epochs=1
        )
        cells, done, seconds = [], 0, 0.0
        for stop in EPOCHS:
            start = time.perf_counter()
            while done < stop:
                history = trainer.train(prefs)
                done += 1
            seconds += time.perf_counter() - start
            after = test_scores(model)
            win = np.mean(after > initial) + 0.5 * np.mean(after == initial)
            cells.append(f"{win:>7.2f}/{history[-1]['rewards/accuracies']:.2f}")
        print(f"{lr:<8.0e}" + "".join(cells) + f"{seconds / done:>9.1f}", flush=True)


def snippets(base, tokenizer, pairs: int, lrs: list[float]) -> None:
    """Held-out reward accuracy / loss after each of EPOCHS, per learning rate."""
    from bench_dpo import text_pairs

    from apl.types import Completion, Preference, Prompt

    data = text_pairs(pairs, seed=1, sentiment=True)

    def completion(text: str) -> Completion:
        return Completion(text, tuple(tokenizer(text, add_special_tokens=False)["input_ids"]))

    prefs = [
        Preference(Prompt(str(i), p), completion(c), completion(r))
        for i, (p, c, r) in enumerate(zip(data["prompt"], data["chosen"], data["rejected"]))
    ]
    print(f"{pairs} sentiment snippet pairs, half held out; cells: held-out accuracy / loss")
    print(f"{'lr':<8}" + "".join(f"{'ep' + str(e):>13}" for e in EPOCHS) + "   s/epoch")
    for lr in lrs:
        model = copy.deepcopy(base)
        trainer = trainer_for(
            model,
            tokenizer,
            learning_rate=lr,
            num_train_epochs=max(EPOCHS),
            validation_fraction=0.5,
        )
        filled = trainer.reference.fill(prefs)  # outside the timed part
        start = time.perf_counter()
        history = trainer.train(filled)
        per_epoch = (time.perf_counter() - start) / len(history)
        cells = "".join(
            f"{history[e - 1]['eval/rewards/accuracies']:>7.2f}/{history[e - 1]['eval/loss']:.3f}"
            for e in EPOCHS
        )
        print(f"{lr:<8.0e}{cells}{per_epoch:>9.1f}", flush=True)


def main() -> None:
    """Parse options and run one sweep."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["on-policy", "snippets"], default="on-policy")
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4, 3e-4, 1e-3])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base, tokenizer, desc = load_default_model()
    base.train()
    print(f"model: {desc}; bf16 autocast, batch 64, beta 0.2, {args.threads} thread(s)")
    if args.task == "on-policy":
        on_policy(base, tokenizer, args.pairs, args.lrs)
    else:
        snippets(base, tokenizer, args.pairs, args.lrs)


if __name__ == "__main__":
    main()
