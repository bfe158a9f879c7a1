"""ModelPolicyView on a real tiny model: no redundant forward pass; rewards from one computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apl.acquisition import ACQUISITIONS
from apl.config import GenerationConfig, LoraConfig
from apl.policy.model import apply_lora
from apl.policy.reference import ReferenceModel
from apl.policy.scoring import completion_logps
from apl.policy.view import ModelPolicyView
from apl.types import Prompt

GEN = GenerationConfig(min_new_tokens=3, max_new_tokens=6, batch_size=8)
REF_BATCH = 4


class ForwardCounter:
    """Counts calls of a module's forward (sampling steps, scoring batches)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.calls += 1


@pytest.fixture()
def setup(tiny_model_and_tokenizer, imdb_sample_texts):
    """A policy nudged away from its frozen reference, both with forward counters."""
    model, tokenizer = tiny_model_and_tokenizer
    reference = ReferenceModel.from_policy(model, tokenizer, batch_size=REF_BATCH)
    torch.manual_seed(1)
    with torch.no_grad():  # as after a DPO update: rewards are no longer all zero
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    prompts = [
        Prompt(uid=f"u{i}", text=" ".join(text.split()[:6]))
        for i, text in enumerate(imdb_sample_texts[:16])
    ]
    return model, tokenizer, reference, prompts


def _view(model, tokenizer, reference, seed=0, is_reference=False):
    gen = torch.Generator().manual_seed(seed)
    return ModelPolicyView(
        model, tokenizer, reference, GEN, beta=0.2, generator=gen, is_reference=is_reference
    )


def test_certainty_scores_policy_and_reference_in_the_same_batches_once(setup):
    model, tokenizer, reference, prompts = setup
    prompts = prompts[:6]
    policy_calls, ref_calls = ForwardCounter(model), ForwardCounter(reference.model)

    # What sampling alone costs, with the same seed the acquisition will use.
    _view(model, tokenizer, reference).sample(prompts, num_samples=2)
    sampling_only = policy_calls.calls
    assert sampling_only > 0 and ref_calls.calls == 0

    policy_calls.calls = 0
    view = _view(model, tokenizer, reference)
    certainty = ACQUISITIONS.build("certainty", {"reserve": 0.0})
    pairs = certainty.acquire(prompts, view, 6, np.random.default_rng(0))
    chunks = math.ceil(2 * 6 / REF_BATCH)
    assert ref_calls.calls == chunks  # each completion's reference scored once
    assert policy_calls.calls == sampling_only + chunks  # one policy pass over the same chunks
    assert reference.sequences_scored == 12

    # The rewards are DPO's: beta * (log p_policy - log p_ref), checked against fresh scoring.
    pad = tokenizer.pad_token_id
    comps = [c for p in pairs for c in (p.a, p.b)]
    prompt_ids = [list(ids) for ids in view.prompt_ids([p.prompt for p in pairs for _ in (0, 1)])]
    comp_ids = [list(c.token_ids) for c in comps]
    policy_lp = completion_logps(model, prompt_ids, comp_ids, batch_size=16, pad_token_id=pad)
    ref_lp = completion_logps(
        reference.model, prompt_ids, comp_ids, batch_size=16, pad_token_id=pad
    )
    rewards = [r for p in pairs for r in (p.extras["reward_a"], p.extras["reward_b"])]
    assert np.allclose(rewards, (0.2 * (policy_lp - ref_lp)).tolist(), atol=1e-4)
    assert not np.allclose(rewards, 0.0)
    assert [p.ref_logp_a for p in pairs] == pytest.approx(ref_lp[0::2].tolist(), abs=1e-4)
    scores = [p.score for p in pairs]
    assert scores == sorted(scores, reverse=True)

    # The same candidates again (same seed, same samples): zero new reference passes; the policy
    # replays the chunks those references came from.
    before = ref_calls.calls
    policy_calls.calls = 0
    again = certainty.acquire(
        prompts, _view(model, tokenizer, reference), 6, np.random.default_rng(0)
    )
    assert [p.a.token_ids for p in again] == [p.a.token_ids for p in pairs]
    assert ref_calls.calls == before
    assert policy_calls.calls == sampling_only + chunks
    assert [p.score for p in again] == scores


def test_cold_start_makes_no_reference_pass(setup):
    model, tokenizer, reference, prompts = setup
    ref_calls = ForwardCounter(reference.model)
    view = _view(model, tokenizer, reference, is_reference=True)
    pairs = ACQUISITIONS.build("certainty").acquire(prompts[:8], view, 4, np.random.default_rng(0))
    assert ref_calls.calls == 0 and len(pairs) == 5
    assert all(p.score == 0.0 and p.extras["bt_prob"] == 0.5 for p in pairs)


@pytest.mark.parametrize("name", ["random", "entropy", "hybrid"])
def test_every_strategy_runs_on_the_real_view(setup, name):
    model, tokenizer, reference, prompts = setup
    acq = ACQUISITIONS.build(
        name, {"entropy_multiplier": 2, "num_samples": 3} if name == "hybrid" else {}
    )
    offered = prompts[: acq.prompts_needed(8)]
    pairs = acq.acquire(offered, _view(model, tokenizer, reference), 4, np.random.default_rng(0))
    assert len(pairs) == 5 and len({p.prompt.uid for p in pairs}) == 5
    assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)
    for pair in pairs:
        assert 1 <= pair.a.num_tokens <= 6 and 1 <= pair.b.num_tokens <= 6
        assert pair.a.logp < 0 and pair.b.logp < 0
        assert 0.0 < pair.extras["bt_prob"] < 1.0
        assert pair.ref_logp_a is not None  # computed once, kept for training
    if name != "random":
        assert all(p.extras["entropy"] > 0 for p in pairs)


def _bf16_setup(model, tokenizer, lora: bool):
    """An UNTRAINED policy (equal to its reference), both scored in bf16 autocast."""
    if lora:
        model = apply_lora(model, LoraConfig(r=4, lora_alpha=8))
    reference = ReferenceModel.from_policy(
        model, tokenizer, lora=lora, batch_size=REF_BATCH, autocast_dtype=torch.bfloat16
    )
    view = ModelPolicyView(
        model,
        tokenizer,
        reference,
        GEN,
        beta=0.2,
        generator=torch.Generator().manual_seed(0),
        autocast_dtype=torch.bfloat16,
        is_reference=True,
    )
    return view, reference


@pytest.mark.parametrize("lora", [False, True], ids=["frozen-copy", "lora"])
def test_a_policy_equal_to_its_reference_gets_rewards_of_exactly_zero_in_bf16(
    tiny_model_and_tokenizer, imdb_sample_texts, lora
):
    model, tokenizer = tiny_model_and_tokenizer
    view, reference = _bf16_setup(model, tokenizer, lora)
    prompts = [
        Prompt(uid=f"u{i}", text=" ".join(text.split()[: 3 + i % 9]))
        for i, text in enumerate(imdb_sample_texts[:10])
    ]
    acq = ACQUISITIONS.build("certainty", {"cold_start": "compute", "reserve": 0.0})
    pairs = acq.acquire(prompts, view, 10, np.random.default_rng(0))
    assert reference.sequences_scored == 20  # the passes ran: nothing was short-cut
    assert [p.score for p in pairs] == [0.0] * 10  # every gap exactly 0
    assert all(p.extras["reward_a"] == 0.0 == p.extras["reward_b"] for p in pairs)
    assert all(p.extras["bt_prob"] == 0.5 for p in pairs)

    # The sampler's own bf16 log-probs are NOT the scorer's: rewards built from them (the old
    # way) are noise, which is what this test guards against.
    comps = [c for p in pairs for c in (p.a, p.b)]
    ref_values = [r for p in pairs for r in (p.ref_logp_a, p.ref_logp_b)]
    assert max(abs(c.logp - r) for c, r in zip(comps, ref_values)) > 1e-3

    # Rows whose reference is already cached, asked in another order and grouping: the policy
    # replays their original chunks, so they stay exactly equal.
    rows = list(range(0, 20, 3))[::-1]
    prompt_rows = [pairs[i // 2].prompt for i in rows]
    policy_lp, ref_lp = view.policy_and_reference_logps(prompt_rows, [comps[i] for i in rows])
    assert policy_lp == ref_lp and reference.sequences_scored == 20
