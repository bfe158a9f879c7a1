"""Where a completion ends: every end-of-turn id of a chat model, stop strings across tokens."""

from __future__ import annotations

import pytest
import torch

from apl.policy.sampling import eos_token_ids, sample_completions
from apl.policy.scoring import completion_logps
from apl.policy.stopping import cut_at_stop, stop_length


def chat_prompt_ids(tokenizer, questions):
    """Token ids of chat-templated one-turn prompts, as the data layer makes them."""
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


QUESTIONS = ["Was the film good?", "Name a funny film.", "Who directed it?", "Why?"]


def test_every_end_of_turn_id_ends_a_completion_and_is_kept(tiny_chat_model_and_tokenizer):
    model, tok = tiny_chat_model_and_tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert eos_token_ids(model, tok) == sorted({tok.eos_token_id, end})  # the list is read whole
    prompts = chat_prompt_ids(tok, QUESTIONS)
    out = sample_completions(
        model,
        tok,
        prompts,
        num_samples=8,
        temperature=1.0,
        min_new_tokens=16,
        max_new_tokens=16,
        generator=torch.Generator().manual_seed(0),
    )
    flat = [(p, c) for p, row in zip(prompts, out, strict=True) for c in row]
    ended = [c for _, c in flat if end in c.token_ids]
    assert ended and len(ended) < len(flat)  # p(<|im_end|>) ~ 0.1 a step: some end, some run on
    for c in ended:
        assert c.token_ids.index(end) == len(c.token_ids) - 1  # nothing after the end of turn
        assert "<|im_end|>" not in c.text and c.text == tok.decode(c.token_ids[:-1])
    assert all(len(c.token_ids) == 16 for _, c in flat if c.token_ids[-1] != end)
    # log-probs cover exactly the kept tokens, the end-of-turn token included
    scored = completion_logps(model, [p for p, _ in flat], [c.token_ids for _, c in flat])
    assert [c.logp for _, c in flat] == pytest.approx(scored.tolist(), abs=1e-4)


def test_a_stop_string_across_tokens_cuts_tokens_text_and_logp(tiny_chat_model_and_tokenizer):
    """Sampling is the same with and without stop strings (they are applied after), so the
    stop string can be taken from a first sample: it spans the 3rd and 4th tokens."""
    model, tok = tiny_chat_model_and_tokenizer
    prompts = chat_prompt_ids(tok, QUESTIONS)
    kw = dict(num_samples=2, temperature=1.0, min_new_tokens=12, max_new_tokens=12)
    free = sample_completions(model, tok, prompts, generator=torch.Generator().manual_seed(3), **kw)

    def spanning_stop(c):  # token 3 + the first character of token 4, not found any earlier
        pieces = [tok.decode([t]) for t in c.token_ids[:4]]
        stop = pieces[2] + pieces[3][:1]
        clean = len(pieces) == 4 and all(pieces) and tok.decode(c.token_ids[:4]) == "".join(pieces)
        return stop if clean and stop not in tok.decode(c.token_ids[:3]) else None

    target = next(c for row in free for c in row if spanning_stop(c))
    stop = spanning_stop(target)
    cut = sample_completions(
        model, tok, prompts, generator=torch.Generator().manual_seed(3), stop=[stop], **kw
    )
    for prompt, row_free, row_cut in zip(prompts, free, cut, strict=True):
        for before, after in zip(row_free, row_cut, strict=True):
            keep = stop_length(tok, before.token_ids, [stop])
            if keep is None:
                assert after == before
                continue
            assert after.token_ids == before.token_ids[:keep]
            assert stop in tok.decode(after.token_ids) and stop not in tok.decode(
                after.token_ids[:-1]
            )
            assert after.text == cut_at_stop(before.text, [stop]) and stop not in after.text
            [direct] = completion_logps(model, [prompt], [after.token_ids]).tolist()
            assert after.logp == pytest.approx(direct, abs=1e-4)
    by_target = cut[[c for row in free for c in row].index(target) // 2]
    assert any(c.token_ids == target.token_ids[:4] for c in by_target)


def test_stop_length_and_cut_at_stop(tiny_chat_model_and_tokenizer):
    _, tok = tiny_chat_model_and_tokenizer
    ids = tok("The film was great. User: more", add_special_tokens=False)["input_ids"]
    keep = stop_length(tok, ids, ["\nUser", " User:"])
    assert tok.decode(ids[:keep]).endswith(" User:") and " User:" not in tok.decode(ids[: keep - 1])
    assert stop_length(tok, ids, ["nowhere"]) is None and stop_length(tok, ids, []) is None
    start = tok.convert_tokens_to_ids("<|im_start|>")  # a special token's text works as a stop
    assert stop_length(tok, [*ids[:3], start, *ids[3:]], ["<|im_start|>"]) == 4
    assert cut_at_stop("a b. User: c", ["User:", " b"]) == "a"
    assert cut_at_stop("no stop here", ["User:"]) == "no stop here"
