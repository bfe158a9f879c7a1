"""One rank of a DPO run, launched by tests/training/test_distributed.py.

Run it under `accelerate launch --multi_gpu --num_processes 2` (on CPU the ranks talk over gloo)
or with plain `python` for the 1-process peer. Every rank writes `<out>/rank<k>.pt`: its
trainable weights before and after, per-round metrics, the first optimiser step's gradient (after
DDP's all-reduce) and how often its reference model ran.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options: the model, the preferences, where to write and the DPO sizes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--preferences", required=True, help="JSON list written by the test")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, required=True, help="per device")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--validation-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skew-rank",
        type=int,
        default=None,
        help="this rank starts from other weights, as an unseeded LoRA init would",
    )
    return parser.parse_args(argv)


def load_preferences(path: str) -> list:
    """Preferences from the test's JSON (prompt text, chosen and rejected token ids)."""
    from apl.types import Completion, Preference, Prompt

    rows = json.loads(Path(path).read_text())
    return [
        Preference(
            prompt=Prompt(uid=r["uid"], text=r["prompt"]),
            chosen=Completion(text="", token_ids=tuple(r["chosen"])),
            rejected=Completion(text="", token_ids=tuple(r["rejected"])),
        )
        for r in rows
    ]


def main(argv: list[str] | None = None) -> None:
    """Train `rounds` reset-mode rounds on the same preferences and save what each rank holds."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from apl.config import DPOConfig
    from apl.policy.reference import ReferenceModel
    from apl.training.dpo_trainer import DPOTrainer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    preferences = load_preferences(args.preferences)
    reference = ReferenceModel.from_policy(model, tokenizer)
    if args.skew_rank is not None and int(os.environ.get("RANK", 0)) == args.skew_rank:
        with torch.no_grad():  # after the reference copy: only this rank's policy differs
            for p in model.parameters():
                p.add_(0.01)
    config = DPOConfig(
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        validation_fraction=args.validation_fraction,
    )
    trainer = DPOTrainer(model, tokenizer, config, reference=reference, seed=args.seed)
    accelerator = trainer.accelerator
    start = trainer.state_dict()["model"]

    first_grads: dict[str, torch.Tensor] = {}
    step = trainer.optimizer.step

    def recording_step(*a, **k):  # a spy: keep the first synced (all-reduced) gradient
        if not first_grads and accelerator.sync_gradients:
            for name, p in accelerator.unwrap_model(trainer.model).named_parameters():
                if p.grad is not None:
                    first_grads[name] = p.grad.detach().clone()
        return step(*a, **k)

    trainer.optimizer.step = recording_step
    histories, scored = [], []
    for _ in range(args.rounds):
        histories.append(trainer.train(preferences))
        scored.append((reference.sequences_scored, reference.forward_passes))
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    result = {
        "rank": accelerator.process_index,
        "num_processes": accelerator.num_processes,
        "distributed_type": accelerator.distributed_type.value,
        "backend": backend,
        "start": start,
        "final": trainer.state_dict()["model"],
        "first_grads": first_grads,
        "histories": histories,
        "reference_scored": scored,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result, out / f"rank{accelerator.process_index}.pt")
    accelerator.end_training()


if __name__ == "__main__":
    main()
