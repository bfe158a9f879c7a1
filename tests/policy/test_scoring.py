"""completion_logps / sequence_logps / collate_pairs against direct unbatched forward passes."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from apl.errors import ConfigError
from apl.policy.scoring import collate_pairs, completion_logps, sequence_logps


def direct_logp(model, prompt, completion) -> float:
    """Summed log-prob of `completion` after `prompt` from one unpadded forward pass."""
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt) :, None]).sum().item()


class FullLogitsOnly(torch.nn.Module):
    """A causal LM whose forward has no `logits_to_keep` (as some custom models): full logits."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.config = model.config

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
        )


@pytest.fixture()
def pairs():
    """Ten (prompt, completion) pairs of mixed lengths (prompts 1..19, completions 1..13 tokens)."""
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 500, (1 + 7 * i % 19,), generator=gen).tolist() for i in range(10)]
    completions = [
        torch.randint(1, 500, (1 + (5 * i) % 13,), generator=gen).tolist() for i in range(10)
    ]
    return prompts, completions


def test_sum_equals_direct_forward_in_input_order(tiny_model_and_tokenizer, pairs):
    model, _ = tiny_model_and_tokenizer
    prompts, completions = pairs
    got = completion_logps(model, prompts, completions, batch_size=3)
    want = torch.tensor([direct_logp(model, p, c) for p, c in zip(prompts, completions)])
    assert got.dtype == torch.float32 and got.shape == (10,)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_average_is_sum_over_completion_tokens(tiny_model_and_tokenizer, pairs):
    model, _ = tiny_model_and_tokenizer
    prompts, completions = pairs
    total = completion_logps(model, prompts, completions, batch_size=4)
    mean = completion_logps(model, prompts, completions, batch_size=4, average=True)
    counts = torch.tensor([len(c) for c in completions], dtype=torch.float32)
    torch.testing.assert_close(mean, total / counts, atol=1e-5, rtol=0)


def test_model_without_logits_to_keep_gives_same_result(tiny_model_and_tokenizer, pairs):
    model, _ = tiny_model_and_tokenizer
    prompts, completions = pairs
    fast = completion_logps(model, prompts, completions, batch_size=5)
    full = completion_logps(FullLogitsOnly(model), prompts, completions, batch_size=5)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)


def test_sequence_logps_is_differentiable(tiny_model_and_tokenizer, pairs):
    model, _ = tiny_model_and_tokenizer
    batch = collate_pairs(*pairs, pad_token_id=0)
    ids, attn, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    logps = sequence_logps(model, ids, attn, comp)
    assert logps.requires_grad
    logps.sum().backward()
    grad = model.get_input_embeddings().weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Padding and prompt positions carry no gradient into the completion sum.
    expect = torch.tensor([direct_logp(model, p, c) for p, c in zip(*pairs, strict=True)])
    torch.testing.assert_close(logps.detach(), expect, atol=1e-4, rtol=0)


def test_collate_layout_and_position_ids():
    batch = collate_pairs([[5, 6, 7], [8]], [[9], [10, 11, 12]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 9, 0, 0], [0, 0, 8, 10, 11, 12]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
    assert batch["completion_mask"].tolist() == [[0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 1]]
    assert batch["position_ids"][1, 2:].tolist() == [0, 1, 2, 3]
    assert batch["position_ids"][0, :4].tolist() == [0, 1, 2, 3]


def test_truncation_keeps_completion_and_cuts_prompt_start():
    batch = collate_pairs([[1, 2, 3, 4, 5]], [[6, 7]], pad_token_id=0, max_length=4)
    assert batch["input_ids"].tolist() == [[4, 5, 6, 7]]
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 1]]
    # A completion longer than max_length - 1 keeps its start and one prompt token.
    batch = collate_pairs([[1, 2]], [[6, 7, 8, 9]], pad_token_id=0, max_length=3)
    assert batch["input_ids"].tolist() == [[2, 6, 7]]


def test_pairs_beyond_context_are_scored_on_the_prompt_tail(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer  # context 128
    prompt, completion = list(range(1, 201)), [11, 12, 13]
    got = completion_logps(model, [prompt], [completion])
    assert got.item() == pytest.approx(direct_logp(model, prompt[-125:], completion), abs=1e-4)


def test_bf16_autocast_is_close_to_fp32(tiny_model_and_tokenizer, pairs):
    model, _ = tiny_model_and_tokenizer
    fp32 = completion_logps(model, *pairs)
    bf16 = completion_logps(model, *pairs, autocast_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, atol=0.05 * 13, rtol=0)


def test_empty_completion_scores_zero_and_bad_input_raises(tiny_model_and_tokenizer):
    model, _ = tiny_model_and_tokenizer
    out = completion_logps(model, [[1, 2], [3]], [[], [4, 5]], average=True)
    assert out[0].item() == 0.0 and out[1].item() < 0
    with pytest.raises(ConfigError, match="2 prompts but 1 completions"):
        completion_logps(model, [[1], [2]], [[3]])
    with pytest.raises(ConfigError, match="Prompt 1 has 0 tokens"):
        collate_pairs([[1], []], [[2], [3]], pad_token_id=0)


def test_llama_left_padding_matches_single_pairs(tiny_model_and_tokenizer, pairs):
    _, tok = tiny_model_and_tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(config).eval()
    got = completion_logps(model, *pairs, batch_size=10)
    want = torch.tensor([direct_logp(model, p, c) for p, c in zip(*pairs, strict=True)])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
