"""sample_completions: untempered log-probs, left padding, EOS, lengths, determinism, limits,
the fixed-shape and fallback decoders, compiled decode steps and their fallback."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from apl.errors import ConfigError
from apl.policy import decoding
from apl.policy.decoding import supports_slot_decoding
from apl.policy.sampling import draw_tokens, encode_prompts, inverse_cdf, sample_completions


def direct_logp(model, prompt, completion, temperature: float = 1.0) -> float:
    """Summed log-prob of `completion` after `prompt` from one unpadded forward pass."""
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt) :, None]).sum().item()


def eos_biased(model, eos_id: int, bias: float):
    """The model with its LM head replaced by one that adds `bias` to the EOS logit."""
    old = model.get_output_embeddings()
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    head.weight = old.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[eos_id] = bias
    model.set_output_embeddings(head)
    return model


@pytest.fixture()
def prompts(tiny_model_and_tokenizer, imdb_sample_texts):
    """Six prompts of different lengths (2..17 tokens), so batches need left padding."""
    _, tokenizer = tiny_model_and_tokenizer
    ids = encode_prompts(tokenizer, imdb_sample_texts[:6])
    return [p[: 2 + 3 * i] for i, p in enumerate(ids)]


def test_encode_prompts_matches_tokenizer_and_fills_empty(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    out = encode_prompts(tok, ["A fine film.", ""])
    assert out[0] == tok("A fine film.", add_special_tokens=False)["input_ids"]
    assert out[1] == [tok.bos_token_id]


def test_logp_equals_direct_forward_with_left_padding(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    gen = torch.Generator().manual_seed(0)
    out = sample_completions(model, tok, prompts, num_samples=3, batch_size=4, generator=gen)
    assert [len(row) for row in out] == [3] * len(prompts)
    for prompt, row in zip(prompts, out, strict=True):
        for c in row:
            assert c.logp == pytest.approx(direct_logp(model, prompt, c.token_ids), abs=1e-4)
            assert c.text == tok.decode(list(c.token_ids), skip_special_tokens=True)


def test_batched_equals_one_prompt_at_a_time(tiny_model_and_tokenizer, prompts):
    # Near-greedy sampling makes tokens a function of the logits alone, whatever the RNG stream:
    # the left-padded batch must then produce the same tokens and log-probs as single prompts.
    model, tok = tiny_model_and_tokenizer
    kw = {"num_samples": 1, "temperature": 1e-4, "min_new_tokens": 12, "max_new_tokens": 12}
    batched = sample_completions(model, tok, prompts, batch_size=6, **kw)
    for prompt, [b] in zip(prompts, batched, strict=True):
        [[single]] = sample_completions(model, tok, [prompt], batch_size=1, **kw)
        assert b.token_ids == single.token_ids
        assert b.logp == pytest.approx(single.logp, abs=1e-4)


def test_eos_stops_a_completion_and_is_kept(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    eos = tok.eos_token_id
    eos_biased(model, eos, 4.0)  # p(EOS) ~ 0.1 per step: some stop early, some do not
    gen = torch.Generator().manual_seed(1)
    out = sample_completions(
        model,
        tok,
        prompts,
        num_samples=4,
        temperature=1.0,
        min_new_tokens=20,
        max_new_tokens=20,
        generator=gen,
    )
    flat = [(p, c) for p, row in zip(prompts, out, strict=True) for c in row]
    stopped = [c for _, c in flat if eos in c.token_ids]
    assert stopped and len(stopped) < len(flat)
    for c in stopped:
        assert c.token_ids.index(eos) == len(c.token_ids) - 1  # nothing after the EOS
        assert len(c.token_ids) <= 20
    assert all(len(c.token_ids) == 20 for _, c in flat if eos not in c.token_ids)
    for p, c in flat:  # the EOS token's own log-prob is part of the sum
        assert c.logp == pytest.approx(direct_logp(model, p, c.token_ids), abs=1e-4)

    eos_biased(model, eos, 60.0)  # EOS is certain: every completion is just [EOS], text ""
    out = sample_completions(model, tok, prompts, num_samples=2, generator=gen)
    assert {(c.token_ids, c.text) for row in out for c in row} == {((eos,), "")}


def test_lengths_lie_in_range_and_vary(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    eos_biased(model, tok.eos_token_id, -1e4)  # no EOS: length is the drawn limit alone
    shapes = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    gen = torch.Generator().manual_seed(2)
    out = sample_completions(
        model,
        tok,
        prompts,
        num_samples=8,
        min_new_tokens=3,
        max_new_tokens=9,
        batch_size=16,
        generator=gen,
    )
    hook.remove()
    lengths = [len(c.token_ids) for row in out for c in row]
    assert min(lengths) >= 3 and max(lengths) <= 9
    assert len(set(lengths)) >= 4
    for p, row in zip(prompts, out, strict=True):
        for c in row:
            assert c.logp == pytest.approx(direct_logp(model, p, c.token_ids), abs=1e-4)
    # 2 prompts per batch: each prompt is prefilled once for its 8 samples, then 16 rows decode
    # and rows that reached their length leave the batch.
    prefill = [s for s in shapes if s[1] > 1]
    decode_rows = [s[0] for s in shapes if s[1] == 1]
    assert [s[0] for s in prefill] == [2, 2, 2]
    assert max(decode_rows) == 16 and min(decode_rows) < 12


def test_same_seed_same_samples_other_seed_differs(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        out = sample_completions(model, tok, prompts, num_samples=2, batch_size=5, generator=gen)
        return [(c.token_ids, c.logp) for row in out for c in row]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_temperature_changes_samples_not_the_logp_definition(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    for temperature in (0.3, 1.7):
        gen = torch.Generator().manual_seed(3)
        out = sample_completions(
            model, tok, prompts[:2], num_samples=2, temperature=temperature, generator=gen
        )
        for p, row in zip(prompts[:2], out, strict=True):
            for c in row:
                untempered = direct_logp(model, p, c.token_ids)
                assert c.logp == pytest.approx(untempered, abs=1e-4)
                assert abs(direct_logp(model, p, c.token_ids, temperature) - untempered) > 1e-2
    cold = sample_completions(
        model,
        tok,
        prompts,
        num_samples=4,
        temperature=0.05,
        generator=torch.Generator().manual_seed(4),
    )
    hot = sample_completions(
        model,
        tok,
        prompts,
        num_samples=4,
        temperature=5.0,
        generator=torch.Generator().manual_seed(4),
    )

    # Cold samples are the model's likely tokens: their untempered log-prob per token is higher.
    def mean_logp(out):
        return sum(c.logp / len(c.token_ids) for row in out for c in row) / sum(map(len, out))

    assert mean_logp(cold) > mean_logp(hot) + 0.1


def test_draw_tokens_follows_the_distribution():
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75]]).repeat(20000, 1)
    tokens = draw_tokens(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(tokens, minlength=4).float() / len(tokens)
    assert counts[0] == 0 and counts[2] == 0  # zero-probability tokens are never drawn
    assert counts[1].item() == pytest.approx(0.25, abs=0.015)


def test_bad_settings_raise_one_line_config_errors(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    with pytest.raises(ConfigError, match=r"generation.max_new_tokens.*\(24\).*128"):
        sample_completions(model, tok, [list(range(1, 110))], max_new_tokens=24)
    with pytest.raises(ConfigError, match="temperature"):
        sample_completions(model, tok, prompts, temperature=0.0)
    with pytest.raises(ConfigError, match="min_new_tokens"):
        sample_completions(model, tok, prompts, min_new_tokens=10, max_new_tokens=5)


def test_bf16_autocast_and_train_mode_restored(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    model.train()
    out = sample_completions(
        model,
        tok,
        prompts[:3],
        autocast_dtype=torch.bfloat16,
        generator=torch.Generator().manual_seed(5),
    )
    assert model.training
    model.eval()
    for p, row in zip(prompts[:3], out, strict=True):
        for c in row:  # bf16 matmuls: close to, not equal to, the fp32 log-prob
            want = direct_logp(model, p, c.token_ids)
            assert c.logp == pytest.approx(want, abs=0.05 * len(c.token_ids))


def tiny(arch: str, tok):
    """A 2-layer width-32 Llama, GPT-NeoX or sliding-window Mistral on the test tokenizer."""
    common = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 128,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    torch.manual_seed(0)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(num_key_value_heads=1, **common)).eval()
    if arch == "mistral":  # window 8 < prompt + completion: its cache layers slide
        return MistralForCausalLM(
            MistralConfig(num_key_value_heads=1, sliding_window=8, **common)
        ).eval()
    return GPTNeoXForCausalLM(GPTNeoXConfig(rotary_pct=0.5, **common)).eval()


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "mistral"])
def test_other_architectures(arch, tiny_model_and_tokenizer, prompts):
    _, tok = tiny_model_and_tokenizer
    model = tiny(arch, tok)
    # Full-attention models decode with fixed shapes; sliding windows fall back to DynamicCache.
    assert supports_slot_decoding(model) == (arch != "mistral")
    out = sample_completions(
        model, tok, prompts, num_samples=2, batch_size=4, generator=torch.Generator().manual_seed(6)
    )
    for p, row in zip(prompts, out, strict=True):
        for c in row:
            assert c.logp == pytest.approx(direct_logp(model, p, c.token_ids), abs=1e-4)
    assert model.config._attn_implementation == "sdpa"  # decode's eager attention was undone


def test_inverse_cdf_never_picks_zero_weight_tokens():
    # 300 tokens (not a multiple of the 128-token block): mass only on tokens 5 and 131.
    weights = torch.zeros(4, 300)
    weights[:, 5], weights[:, 131] = 1.0, 3.0
    u = torch.tensor([[0.0], [0.2499], [0.2501], [1 - 2**-24]])
    assert inverse_cdf(weights, u).tolist() == [5, 5, 131, 131]
    # A block whose share rounds to the whole total must not spill into zero-weight tokens.
    weights = torch.zeros(1, 256)
    weights[0, 127] = 1e-30
    weights[0, 0] = 1.0
    assert inverse_cdf(weights, torch.tensor([[1 - 2**-24]])).tolist() in ([0], [127])


@pytest.mark.slow  # compiling the decode step from a cold inductor cache: ~30 s on 2 busy cores
def test_compiled_decoding_matches_uncompiled(tiny_model_and_tokenizer, prompts):
    model, tok = tiny_model_and_tokenizer
    kw = {"num_samples": 2, "batch_size": 5, "min_new_tokens": 4, "max_new_tokens": 10}

    def check():
        plain = sample_completions(
            model, tok, prompts, generator=torch.Generator().manual_seed(9), **kw
        )
        compiled = sample_completions(
            model, tok, prompts, compile=True, generator=torch.Generator().manual_seed(9), **kw
        )
        assert not decoding.FORWARD_STEP.failed
        for p, row, want in zip(prompts, compiled, plain, strict=True):
            assert [c.token_ids for c in row] == [c.token_ids for c in want]
            for c in row:
                assert c.logp == pytest.approx(direct_logp(model, p, c.token_ids), abs=1e-4)

    check()
    # Weights updated in place (as a DPO step does) must reach the compiled step: the graph
    # takes parameters as inputs, it does not bake them in.
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(1.5)
    check()


def test_compile_failure_falls_back_and_warns_once(
    tiny_model_and_tokenizer, prompts, monkeypatch, caplog
):
    # A real failure: inductor cannot find its C++ compiler (and may not reuse cached kernels).
    import torch._inductor.config as inductor_config

    model, tok = tiny_model_and_tokenizer
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(decoding, "FORWARD_STEP", decoding.MaybeCompiled(decoding.forward_step))
    torch._dynamo.reset()
    kw = {"num_samples": 2, "min_new_tokens": 6, "max_new_tokens": 6}
    want = sample_completions(
        model, tok, prompts[:3], generator=torch.Generator().manual_seed(4), **kw
    )
    for _ in range(2):
        got = sample_completions(
            model, tok, prompts[:3], compile=True, generator=torch.Generator().manual_seed(4), **kw
        )
        assert [[c.token_ids for c in row] for row in got] == [
            [c.token_ids for c in row] for row in want
        ]
    torch._dynamo.reset()
    assert decoding.FORWARD_STEP.failed
    warnings = [r for r in caplog.records if "torch.compile of forward_step failed" in r.message]
    assert len(warnings) == 1
