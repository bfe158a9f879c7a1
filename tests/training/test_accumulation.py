"""Gradient accumulation gives every pair the same weight in every optimiser step.

Each step's gradient is compared with one direct forward/backward of the mean DPO loss over
exactly that step's pairs, rebuilt from the micro-batches the trainer used (fp32, 1e-6).
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_preferences

from apl.config import DPOConfig
from apl.policy.reference import ReferenceModel
from apl.policy.scoring import sequence_logps
from apl.training.batches import PreferenceRow
from apl.training.dpo_loss import dpo_loss
from apl.training.dpo_trainer import DPOTrainer


def _rows_of(batch: dict[str, torch.Tensor]) -> list[PreferenceRow]:
    """The (prompt, chosen, rejected, refs) rows a collated micro-batch was made from."""
    n = len(batch["ref_chosen"])
    seqs = []
    for i in range(2 * n):
        ids, attn, comp = (
            batch["input_ids"][i],
            batch["attention_mask"][i],
            batch["completion_mask"][i],
        )
        prompt = ids[(attn == 1) & (comp == 0)].tolist()
        seqs.append((tuple(prompt), tuple(ids[comp == 1].tolist())))
    return [
        PreferenceRow(
            seqs[i][0],
            seqs[i][1],
            seqs[n + i][1],
            float(batch["ref_chosen"][i]),
            float(batch["ref_rejected"][i]),
        )
        for i in range(n)
    ]


def _record_steps(trainer: DPOTrainer) -> list[dict]:
    """Per optimiser step: the weights before it, its gradients, and the pairs it used."""
    steps: list[dict] = []
    pending: list[PreferenceRow] = []
    compute = trainer.compute_loss

    def spy(batch):
        pending.extend(_rows_of(batch))
        return compute(batch)

    trainer.compute_loss = spy
    model = trainer._unwrapped()

    def before_step(opt, args, kwargs):
        steps.append(
            {
                "weights": {n: v.detach().clone() for n, v in model.state_dict().items()},
                "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()},
                "rows": list(pending),
            }
        )
        pending.clear()

    trainer.optimizer.optimizer.register_step_pre_hook(before_step)
    return steps


def _direct_grads(model, trainer: DPOTrainer, step: dict) -> dict[str, torch.Tensor]:
    """Gradient of the mean DPO loss over the step's pairs in ONE batch, at its weights."""
    twin = copy.deepcopy(model)
    twin.load_state_dict(step["weights"])
    twin.train()
    batch = trainer.collator(step["rows"])
    logps = sequence_logps(
        twin,
        batch["input_ids"],
        batch["attention_mask"],
        batch["completion_mask"],
        position_ids=batch["position_ids"],
    )
    chosen, rejected = logps.chunk(2)
    losses, _, _ = dpo_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"], 0.2)
    losses.mean().backward()
    return {n: p.grad for n, p in twin.named_parameters()}


@pytest.mark.parametrize(
    ("mode", "accumulation", "pairs_per_step"),
    [
        ("reset", 3, [12, 1]),  # micro-batches 4,4,4 | 1: a last group of one short batch
        ("reset", 2, [8, 5]),  # 4,4 | 4,1: an uneven last micro-batch inside a group
        ("online", 1, [13]),  # online: one step over 4,4,4,1 whatever accumulation says
    ],
)
def test_each_step_is_the_mean_loss_gradient_over_its_pairs(
    tiny_model_and_tokenizer, mode, accumulation, pairs_per_step
):
    model, tokenizer = tiny_model_and_tokenizer
    prefs = make_preferences(tokenizer, 13, seed=5)
    reference = ReferenceModel.from_policy(model, tokenizer)
    config = DPOConfig(
        mode=mode,
        learning_rate=1e-2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=1,
    )
    trainer = DPOTrainer(model, tokenizer, config, reference=reference, seed=0)
    steps = _record_steps(trainer)
    trainer.train(prefs)
    assert [len(s["rows"]) for s in steps] == pairs_per_step
    assert trainer.global_step == len(pairs_per_step)
    for k, step in enumerate(steps):
        direct = _direct_grads(model, trainer, step)
        for name, grad in step["grads"].items():
            torch.testing.assert_close(
                grad, direct[name], rtol=0, atol=1e-6, msg=f"step {k + 1}: {name}"
            )
    # The steps moved the weights (lr 1e-2), so step 2 was checked at step 1's result.
    if len(steps) > 1:
        moved = [not torch.equal(steps[0]["weights"][n], steps[1]["weights"][n]) for n in direct]
        assert any(moved)
