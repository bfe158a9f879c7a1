"""ReferenceModel: exact log-probs, computed once, frozen; with LoRA the adapter-disabled base."""

from __future__ import annotations

import copy

import pytest
import torch

from apl.config import LoraConfig
from apl.policy.model import apply_lora
from apl.policy.reference import ReferenceModel
from apl.types import Completion, Preference, Prompt

TEXTS = ["A quiet film about", "The plot was", "I laughed at"]
ENDINGS = [" two brothers and a farm.", " thin but the cast is great", " every single joke, twice"]


def direct_logp(model, prompt_ids, completion_ids) -> float:
    """Sum of log p(token | prefix) over the completion, one unpadded sequence at a time."""
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    targets = ids[0, 1:]
    return sum(logp[i, targets[i]].item() for i in range(len(prompt_ids) - 1, ids.shape[1] - 1))


def encode(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_logps_match_a_direct_computation(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ref = ReferenceModel.from_policy(model, tok, batch_size=2)
    prompts, completions = ref.prompt_ids(TEXTS), encode(tok, ENDINGS)
    got = ref.logps(prompts, completions)
    want = [direct_logp(model, p, c) for p, c in zip(prompts, completions)]
    assert got == pytest.approx(want, rel=1e-5)
    assert prompts == [tuple(ids) for ids in encode(tok, TEXTS)]


def test_each_logp_is_computed_once(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ref = ReferenceModel.from_policy(model, tok)
    prompts, completions = ref.prompt_ids(TEXTS), encode(tok, ENDINGS)
    first = ref.logps(prompts + prompts[:1], completions + completions[:1])  # a duplicate row
    assert ref.sequences_scored == 3 and ref.forward_passes == 1 and len(ref) == 3
    assert first[3] == first[0]
    again = ref.logps(prompts[::-1], completions[::-1])
    assert again == first[:3][::-1]
    assert ref.sequences_scored == 3 and ref.forward_passes == 1


def test_fill_sets_missing_values_and_keeps_known_ones(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ref = ReferenceModel.from_policy(model, tok)
    good, bad = (Completion(t, tuple(ids)) for t, ids in zip(ENDINGS[:2], encode(tok, ENDINGS[:2])))
    prefs = [
        Preference(Prompt("a", TEXTS[0]), good, bad),
        Preference(Prompt("b", TEXTS[1]), bad, good, ref_logp_chosen=-1.5, ref_logp_rejected=-2.5),
    ]
    filled = ref.fill(prefs)
    assert ref.sequences_scored == 2  # the second pair's values came with it
    assert (filled[1].ref_logp_chosen, filled[1].ref_logp_rejected) == (-1.5, -2.5)
    p0 = ref.prompt_ids(TEXTS[:1])[0]
    assert filled[0].ref_logp_chosen == pytest.approx(
        direct_logp(model, p0, good.token_ids), rel=1e-5
    )
    assert filled[0].ref_logp_rejected == pytest.approx(
        direct_logp(model, p0, bad.token_ids), rel=1e-5
    )
    assert prefs[0].ref_logp_chosen is None  # inputs are not mutated


def test_frozen_copy_does_not_follow_the_policy(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    ref = ReferenceModel.from_policy(model, tok)
    assert ref.model is not model and not any(p.requires_grad for p in ref.model.parameters())
    prompts, completions = ref.prompt_ids(TEXTS), encode(tok, ENDINGS)
    before = [direct_logp(model, p, c) for p, c in zip(prompts, completions)]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    assert ref.logps(prompts, completions) == pytest.approx(before, rel=1e-5)


def test_lora_reference_is_the_base_without_a_second_copy(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    base = copy.deepcopy(model)
    policy = apply_lora(model, LoraConfig(r=4, lora_alpha=8))
    with torch.no_grad():  # what training does to an adapter: B moves away from 0
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ref = ReferenceModel.from_policy(policy, tok, lora=True)
    assert ref.model is policy  # no deep copy: the adapter is switched off instead
    prompts, completions = ref.prompt_ids(TEXTS), encode(tok, ENDINGS)
    got = ref.logps(prompts, completions)
    assert got == pytest.approx(
        [direct_logp(base, p, c) for p, c in zip(prompts, completions)], rel=1e-5
    )
    policy_logps = [direct_logp(policy, p, c) for p, c in zip(prompts, completions)]
    assert all(abs(a - b) > 1e-3 for a, b in zip(policy_logps, got))  # the adapter is back on


def test_lora_needs_a_peft_model(tiny_model_and_tokenizer):
    from apl.errors import ConfigError

    model, tok = tiny_model_and_tokenizer
    with pytest.raises(ConfigError, match="lora=True.*GPT2LMHeadModel"):
        ReferenceModel.from_policy(model, tok, lora=True)
