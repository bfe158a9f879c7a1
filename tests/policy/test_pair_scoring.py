"""Packed preference pairs score exactly as their two sequences run apart, values and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from test_sampling import tiny
from test_scoring import FullLogitsOnly, direct_logp

from apl.policy.pair_scoring import (
    collate_shared_prompt,
    gather_log_softmax,
    pair_logps,
    supports_shared_prompt,
)
from apl.policy.scoring import collate_pairs, sequence_logps


@pytest.fixture()
def triples():
    """Seven (prompt, chosen, rejected) of mixed lengths, 1-token prompts and completions included."""
    gen = torch.Generator().manual_seed(1)

    def ids(n: int) -> list[int]:
        return torch.randint(1, 500, (n,), generator=gen).tolist()

    sizes = [(1, 1, 1), (5, 9, 2), (12, 3, 14), (2, 1, 7), (9, 11, 11), (3, 6, 1), (16, 13, 5)]
    return [ids(p) for p, _, _ in sizes], [ids(c) for _, c, _ in sizes], [ids(r) for *_, r in sizes]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logps_equal_direct_forwards(tiny_model_and_tokenizer, triples, attention):
    model, _ = tiny_model_and_tokenizer
    model.config._attn_implementation = attention
    prompts, chosen, rejected = triples
    batch = collate_shared_prompt(prompts, chosen, rejected, pad_token_id=0)
    with torch.no_grad():
        got_c, got_r = pair_logps(model, batch, additive_mask=attention == "eager")
    want_c = [direct_logp(model, p, c) for p, c in zip(prompts, chosen)]
    want_r = [direct_logp(model, p, r) for p, r in zip(prompts, rejected)]
    torch.testing.assert_close(got_c, torch.tensor(want_c), atol=1e-4, rtol=0)
    torch.testing.assert_close(got_r, torch.tensor(want_r), atol=1e-4, rtol=0)


def test_packed_gradients_equal_separate_sequences(tiny_model_and_tokenizer, triples):
    model, _ = tiny_model_and_tokenizer
    model.train()
    other = copy.deepcopy(model)
    prompts, chosen, rejected = triples
    weights = torch.linspace(-1.0, 2.0, 2 * len(prompts))  # distinct per sequence

    c, r = pair_logps(model, collate_shared_prompt(prompts, chosen, rejected, 0))
    (torch.cat([c, r]) * weights).sum().backward()
    apart = collate_pairs(prompts + prompts, chosen + rejected, 0)
    logps = sequence_logps(
        other, apart["input_ids"], apart["attention_mask"], apart["completion_mask"]
    )
    (logps * weights).sum().backward()

    theirs = dict(other.named_parameters())
    for name, p in model.named_parameters():
        q = theirs[name].grad
        torch.testing.assert_close(p.grad, q, rtol=1e-5, atol=1e-6 * q.abs().max().item())


def test_model_without_logits_to_keep_gives_same_result(tiny_model_and_tokenizer, triples):
    model, _ = tiny_model_and_tokenizer
    batch = collate_shared_prompt(*triples, pad_token_id=0)
    with torch.no_grad():
        fast = torch.cat(pair_logps(model, batch))
        full = torch.cat(pair_logps(FullLogitsOnly(model), batch))
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)


def test_collated_rows_are_prompt_chosen_rejected_with_restarted_positions():
    batch = collate_shared_prompt([[7, 8]], [[1, 2, 3]], [[4, 5]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[7, 8, 1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 2, 3]]
    # logits at: last prompt token, chosen[:-1], rejected[:-1]
    assert batch["logit_mask"].tolist() == [[False, True, True, True, False, True, False]]
    # kept rows 0 (prompt end), 1-2 (chosen 1, 2), 3 (rejected 4)
    assert batch["target_rows"].tolist() == [0, 1, 2, 0, 3]
    assert batch["targets"].tolist() == [1, 2, 3, 4, 5]
    assert batch["target_seqs"].tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gather_log_softmax_gradient_matches_autograd(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(6, 50, generator=gen)).to(dtype)
    rows = torch.tensor([0, 0, 1, 2, 2, 2, 5, 3])  # repeated rows: one row, two targets
    tokens = torch.tensor([4, 9, 0, 49, 49, 7, 1, 2])
    upstream = torch.randn(len(rows), generator=gen)

    ours = logits.clone().requires_grad_()
    out = gather_log_softmax(ours, rows, tokens)
    (out * upstream).sum().backward()
    plain = logits.clone().requires_grad_()
    want = torch.log_softmax(plain.float(), -1)[rows, tokens]
    (want * upstream).sum().backward()

    assert out.dtype == torch.float32 and ours.grad.dtype == dtype
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(ours.grad, plain.grad, rtol=0, atol=tol)


def test_gather_log_softmax_refuses_a_second_backward():
    logits = torch.randn(3, 8, requires_grad=True)
    out = gather_log_softmax(logits, torch.tensor([0, 2]), torch.tensor([1, 5])).sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward once"):
        out.backward()


def test_supported_models(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    assert supports_shared_prompt(model)  # GPT-2, SDPA
    model.config._attn_implementation = "eager"
    assert supports_shared_prompt(model)
    assert not supports_shared_prompt(FullLogitsOnly(model))  # not transformers' attention API
    assert not supports_shared_prompt(tiny("mistral", tok))  # sliding-window layers


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_rotary_models_packed_equal_direct(tiny_model_and_tokenizer, triples, arch):
    """Rotary positions come from position_ids: rejected restarts after the prompt there too."""
    model = tiny(arch, tiny_model_and_tokenizer[1])
    assert supports_shared_prompt(model)
    prompts, chosen, rejected = triples
    with torch.no_grad():
        got = torch.cat(pair_logps(model, collate_shared_prompt(prompts, chosen, rejected, 0)))
    want = [direct_logp(model, p, c) for p, c in zip(prompts + prompts, chosen + rejected)]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-4, rtol=0)
