"""A batch split into forward chunks trains exactly like the whole batch in one forward."""

from __future__ import annotations

import copy

import pytest
import torch

from apl.config import DPOConfig
from apl.policy.reference import ReferenceModel
from apl.training.batches import PreferenceCollator, PreferenceRow
from apl.training.dpo_trainer import DPOTrainer


def _rows(n: int, seed: int = 0) -> list[PreferenceRow]:
    gen = torch.Generator().manual_seed(seed)

    def ids(low: int, high: int) -> tuple[int, ...]:
        size = int(torch.randint(low, high, (1,), generator=gen))
        return tuple(torch.randint(1, 500, (size,), generator=gen).tolist())

    return [PreferenceRow(ids(1, 12), ids(1, 20), ids(1, 20), -3.0 - i, -4.0 + i) for i in range(n)]


@pytest.mark.parametrize("shared_prompt", [True, False])
def test_chunks_cover_every_pair_once_within_the_token_budget(shared_prompt):
    rows = _rows(23)
    batch = PreferenceCollator(0, shared_prompt, max_tokens=100)(rows)
    pairs = torch.cat([c["pairs"] for c in batch["chunks"]])
    assert sorted(pairs.tolist()) == list(range(23)) and len(batch["chunks"]) > 3
    for chunk in batch["chunks"]:
        assert len(chunk["pairs"]) == 1 or chunk["input_ids"].numel() <= 100
    assert batch["ref_chosen"].tolist() == [r.ref_chosen for r in rows]  # batch order kept
    whole = PreferenceCollator(0, shared_prompt)(rows)
    assert len(whole["chunks"]) == 1


def test_chunked_backward_equals_one_forward(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    other = copy.deepcopy(model)
    rows = _rows(20, seed=1)
    losses = {}
    for m, budget in ((model, 120), (other, None)):
        trainer = DPOTrainer(
            m,
            tok,
            DPOConfig(max_forward_tokens=budget),
            reference=ReferenceModel.from_policy(m, tok),
        )
        trainer.model.train()
        batch = trainer.collator(rows)
        assert (len(batch["chunks"]) > 2) == (budget is not None)
        losses[budget] = trainer.backward(batch, scale=0.5)
    for a, b in zip(losses[120], losses[None]):  # per-pair values, in batch order
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_packed_row_may_outgrow_the_context_while_positions_fit(tiny_model_and_tokenizer):
    """Prompt + chosen + rejected is 180 tokens for a 128-position model; positions stop at 120."""
    model, tok = tiny_model_and_tokenizer
    assert model.config.n_positions == 128
    row = PreferenceRow(tuple(range(1, 61)), tuple(range(100, 160)), tuple(range(200, 260)), 0, 0)
    trainer = DPOTrainer(model, tok, DPOConfig(), reference=ReferenceModel.from_policy(model, tok))
    trainer._rows = lambda prefs: [row]
    batch = trainer.collator([row])
    assert batch["chunks"][0]["input_ids"].shape[1] == 180
    loss, _ = trainer.compute_loss(batch)
    assert torch.isfinite(loss)
