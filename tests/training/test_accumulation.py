"""Gradient accumulation gives every pair the same weight in every optimiser step.

Each step's gradient is compared with one direct forward/backward of the mean DPO loss over
exactly that step's pairs, rebuilt from the micro-batches the trainer used (fp32, 1e-6): two
plain sequences per pair, so the trainer's packed rows and forward chunks are checked too.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_preferences

from apl.config import DPOConfig
from apl.policy.pair_scoring import CHOSEN, PROMPT, REJECTED
from apl.policy.reference import ReferenceModel
from apl.policy.scoring import collate_pairs, sequence_logps
from apl.training.batches import PreferenceRow
from apl.training.dpo_loss import dpo_loss
from apl.training.dpo_trainer import DPOTrainer


def _rows_of(batch: dict) -> list[PreferenceRow]:
    """The (prompt, chosen, rejected, refs) rows a collated micro-batch was made from, in order.

    A micro-batch is a list of chunks, each with packed pair rows (`segments`) or chosen and
    rejected rows padded apart; `pairs` gives each chunk's pairs' places in the batch.
    """
    found: dict[int, tuple[tuple[int, ...], ...]] = {}
    for chunk in batch["chunks"]:
        ids, pairs = chunk["input_ids"], chunk["pairs"].tolist()
        if "segments" in chunk:
            for i, place in enumerate(pairs):
                found[place] = tuple(
                    tuple(ids[i][chunk["segments"][i] == s].tolist())
                    for s in (PROMPT, CHOSEN, REJECTED)
                )
            continue
        n = len(pairs)
        attn, comp = chunk["attention_mask"], chunk["completion_mask"]
        for i, place in enumerate(pairs):
            prompt = ids[i][(attn[i] == 1) & (comp[i] == 0)].tolist()
            chosen, rejected = ids[i][comp[i] == 1], ids[n + i][comp[n + i] == 1]
            found[place] = (tuple(prompt), tuple(chosen.tolist()), tuple(rejected.tolist()))
    return [
        PreferenceRow(*found[i], float(batch["ref_chosen"][i]), float(batch["ref_rejected"][i]))
        for i in range(len(batch["ref_chosen"]))
    ]


def _record_steps(trainer: DPOTrainer) -> list[dict]:
    """Per optimiser step: the weights before it, its gradients, and the pairs it used."""
    steps: list[dict] = []
    pending: list[PreferenceRow] = []
    backward = trainer.backward

    def spy(batch, *args, **kwargs):
        pending.extend(_rows_of(batch))
        return backward(batch, *args, **kwargs)

    trainer.backward = spy
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


def _direct_grads(model, step: dict, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Gradient of the mean DPO loss over the step's pairs in ONE plain batch, at its weights.

    Plain means two left-padded sequences per pair through `sequence_logps`: neither the
    trainer's packing nor its chunks.
    """
    twin = copy.deepcopy(model)
    twin.load_state_dict(step["weights"])
    twin.train()
    rows = step["rows"]
    prompts = [list(r.prompt_ids) for r in rows]
    completions = [list(r.chosen_ids) for r in rows] + [list(r.rejected_ids) for r in rows]
    batch = collate_pairs(prompts + prompts, completions, pad_token_id)
    logps = sequence_logps(
        twin,
        batch["input_ids"],
        batch["attention_mask"],
        batch["completion_mask"],
        position_ids=batch["position_ids"],
    )
    chosen, rejected = logps.chunk(2)
    ref_chosen = torch.tensor([r.ref_chosen for r in rows])
    ref_rejected = torch.tensor([r.ref_rejected for r in rows])
    losses, _, _ = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, 0.2)
    losses.mean().backward()
    return {n: p.grad for n, p in twin.named_parameters()}


@pytest.mark.parametrize(
    ("mode", "accumulation", "pairs_per_step", "forward_tokens"),
    [
        ("reset", 3, [12, 1], None),  # micro-batches 4,4,4 | 1: a last group of one short batch
        ("reset", 2, [8, 5], None),  # 4,4 | 4,1: an uneven last micro-batch inside a group
        ("reset", 2, [8, 5], 1),  # the same, each pair a forward chunk of its own
        ("online", 1, [13], None),  # online: one step over 4,4,4,1 whatever accumulation says
    ],
)
def test_each_step_is_the_mean_loss_gradient_over_its_pairs(
    tiny_model_and_tokenizer, mode, accumulation, pairs_per_step, forward_tokens
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
        max_forward_tokens=forward_tokens,
    )
    trainer = DPOTrainer(model, tokenizer, config, reference=reference, seed=0)
    assert trainer.collator.shared_prompt  # the tiny model takes packed pairs
    steps = _record_steps(trainer)
    trainer.train(prefs)
    assert [len(s["rows"]) for s in steps] == pairs_per_step
    assert trainer.global_step == len(pairs_per_step)
    for k, step in enumerate(steps):
        direct = _direct_grads(model, step, trainer.collator.pad_token_id)
        for name, grad in step["grads"].items():
            torch.testing.assert_close(
                grad, direct[name], rtol=0, atol=1e-6, msg=f"step {k + 1}: {name}"
            )
    # The steps moved the weights (lr 1e-2), so step 2 was checked at step 1's result.
    if len(steps) > 1:
        moved = [not torch.equal(steps[0]["weights"][n], steps[1]["weights"][n]) for n in direct]
        assert any(moved)
