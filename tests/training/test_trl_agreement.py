"""apl's DPO loss and gradients agree with TRL's DPOTrainer (sigmoid loss) on the same batch."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import make_preferences

from apl.config import DPOConfig
from apl.policy.reference import ReferenceModel
from apl.training.dpo_trainer import DPOTrainer

BETA = 0.2


@pytest.fixture()
def policy_and_reference(tiny_model_and_tokenizer):
    """The tiny model as reference, and a perturbed copy as policy, so the rewards are not all 0."""
    reference, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(reference)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return policy, reference, tok


@pytest.mark.parametrize("layout", ["packed", "packed-eager", "two-sequences"])
def test_loss_and_every_gradient_match_trl(policy_and_reference, tmp_path, layout):
    """Packed pairs (SDPA or eager attention) and the two-sequence fallback all equal TRL."""
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer as TRLTrainer

    policy, reference, tok = policy_and_reference
    prefs = make_preferences(tok, 6, seed=2)
    trl_policy, trl_reference = copy.deepcopy(policy), copy.deepcopy(reference)

    # apl: reference log-probs from the cached ReferenceModel, policy forward on the collated batch
    if layout == "packed-eager":
        policy.config._attn_implementation = "eager"
    ours = DPOTrainer(policy, tok, DPOConfig(beta=BETA), reference=ReferenceModel(reference, tok))
    assert ours.collator.shared_prompt
    ours.collator.shared_prompt = layout != "two-sequences"
    rows = ours._rows(prefs)
    ours.model.train()
    loss, (losses, r_chosen, r_rejected, _, _) = ours.compute_loss(ours.collator(rows))
    loss.backward()

    # TRL: its own reference forward (no precompute) and its own collator, same token ids
    text = {
        "prompt": [p.prompt.text for p in prefs],
        "chosen": [p.chosen.text for p in prefs],
        "rejected": [p.rejected.text for p in prefs],
    }
    args = TRLConfig(
        output_dir=str(tmp_path),
        beta=BETA,
        loss_type=["sigmoid"],
        bf16=False,
        use_cpu=True,
        report_to="none",
        precompute_ref_log_probs=False,
        per_device_train_batch_size=len(prefs),
    )
    theirs = TRLTrainer(
        trl_policy,
        ref_model=trl_reference,
        args=args,
        train_dataset=Dataset.from_dict(text),
        processing_class=tok,
    )
    batch = theirs.data_collator(
        [
            {
                "prompt_ids": list(r.prompt_ids),
                "chosen_ids": list(r.chosen_ids),
                "rejected_ids": list(r.rejected_ids),
            }
            for r in rows
        ]
    )
    theirs.model.train()
    trl_loss = theirs.compute_loss(theirs.model, batch)
    trl_loss.backward()

    assert losses.std() > 0 and r_chosen.abs().min() > 0  # a non-degenerate batch
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=0)
    trl_metrics = {k: v[-1] for k, v in theirs._metrics["train"].items()}
    assert trl_metrics["rewards/chosen"] == pytest.approx(r_chosen.mean().item(), rel=1e-4)
    assert trl_metrics["rewards/margins"] == pytest.approx(
        (r_chosen - r_rejected).mean().item(), rel=1e-4
    )
    trl_grads = dict(trl_policy.named_parameters())
    for name, p in policy.named_parameters():
        q = trl_grads[name].grad
        assert p.grad is not None and q is not None, name
        torch.testing.assert_close(p.grad, q, rtol=1e-5, atol=1e-5 * q.abs().max().item(), msg=name)
