"""The boundary rule: prompts are token prefixes of their text, cut at the nearest word boundary."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from apl.data.truncation import is_token_prefix, truncate_prompt, truncate_prompts


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False).input_ids


@pytest.fixture(scope="module")
def texts(imdb_sample_texts: list[str]) -> list[str]:
    """400 reviews longer than 200 characters, as the IMDB task uses."""
    return [t for t in imdb_sample_texts if len(t) > 200][:400]


@pytest.fixture(scope="module")
def lengths(texts: list[str]) -> list[int]:
    rng = random.Random(0)
    return [rng.randint(8, 16) for _ in texts]


def expected_prompt(text: str, num_tokens: int, tok) -> str:
    """The rule, computed independently from the pre-tokenizer and plain encodes."""
    pre = tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text[:400])
    ends = [end for _, (_, end) in pre[:-2] if not text[end - 1].isspace()]
    counts = [len(ids) for ids in tok([text[:e] for e in ends], add_special_tokens=False).input_ids]
    fitting = [e for e, n in zip(ends, counts, strict=True) if n <= num_tokens]
    return text[: fitting[-1] if fitting else ends[0]]


def test_prompts_are_token_prefixes_and_completions_start_cleanly(texts, lengths, tiny_tokenizer):
    prompts = truncate_prompts(texts, lengths, tiny_tokenizer)
    for text, prompt in zip(texts, prompts, strict=True):
        assert prompt and text.startswith(prompt) and len(prompt) < len(text)
        assert not prompt[-1].isspace()
        rest = text[len(prompt) :]
        # Encoding prompt and rest apart gives exactly the ids of the whole review.
        assert ids(tiny_tokenizer, text) == ids(tiny_tokenizer, prompt) + ids(tiny_tokenizer, rest)
        assert is_token_prefix(prompt, text, tiny_tokenizer)


def test_cut_is_the_nearest_word_boundary_at_or_before_token_l(texts, lengths, tiny_tokenizer):
    prompts = truncate_prompts(texts, lengths, tiny_tokenizer)
    expected = [
        expected_prompt(t, n, tiny_tokenizer) for t, n in zip(texts[:200], lengths, strict=False)
    ]
    assert prompts[:200] == expected
    counts = [len(ids(tiny_tokenizer, p)) for p in prompts]
    # At most L tokens, unless the prompt is a single word longer than that.
    assert all(c <= n or " " not in p for p, c, n in zip(prompts, counts, lengths, strict=True))
    assert sum(c == n for c, n in zip(counts, lengths, strict=True)) > len(texts) // 4


def inside_word(text: str, cut: int) -> bool:
    return text[cut - 1].isalpha() and text[cut].isalpha()


def test_the_rule_never_cuts_inside_a_word_where_cuts_break_the_prefix(
    texts, lengths, tiny_tokenizer
):
    """Why the rule exists: mid-word cuts are often not token prefixes of the text."""
    prompts = truncate_prompts(texts, lengths, tiny_tokenizer)
    assert not any(inside_word(t, len(p)) for t, p in zip(texts, prompts, strict=True))
    naive = [
        tiny_tokenizer.decode(ids(tiny_tokenizer, t)[:n])
        for t, n in zip(texts, lengths, strict=True)
    ]
    assert sum(inside_word(t, len(p)) for t, p in zip(texts, naive, strict=True)) > len(texts) // 4
    mid_word = [(t[:200], i) for t in texts[:40] for i in range(1, 100) if inside_word(t, i)]
    broken = sum(not is_token_prefix(t[:i], t, tiny_tokenizer) for t, i in mid_word)
    assert broken > len(mid_word) // 4


def test_a_first_word_longer_than_l_tokens_is_kept_whole(tiny_tokenizer):
    text = "Supercalifragilisticexpialidocious, said nobody about this film ever again."
    assert len(ids(tiny_tokenizer, "Supercalifragilisticexpialidocious")) > 3
    assert truncate_prompt(text, 2, tiny_tokenizer) == "Supercalifragilisticexpialidocious"


def test_a_text_without_tokens_to_spare_gives_none(tiny_tokenizer):
    assert truncate_prompt("Great film", 16, tiny_tokenizer) is None
    assert truncate_prompt("", 8, tiny_tokenizer) is None


def test_a_short_prefix_grows_until_it_holds_enough_tokens(texts, lengths, tiny_tokenizer):
    small = truncate_prompts(texts[:100], lengths[:100], tiny_tokenizer, prefix_chars=8)
    large = truncate_prompts(texts[:100], lengths[:100], tiny_tokenizer, prefix_chars=100_000)
    assert small == large


def metaspace_bpe(texts: list[str], llama_layout: bool) -> PreTrainedTokenizerFast:
    """A SentencePiece-style BPE with "▁word" pieces.

    `llama_layout`: spaces become "▁" in a normaliser and there is no pre-tokenizer, the way
    transformers converts Llama-2's tokenizer.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator([t[:300] for t in texts], trainer)
    if llama_layout:
        tok.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
        tok.pre_tokenizer = None
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


@pytest.mark.parametrize("llama_layout", [False, True], ids=["metaspace", "llama-normaliser"])
def test_sentencepiece_style_tokenizers_get_verified_prefixes(texts, lengths, llama_layout):
    tok = metaspace_bpe(texts, llama_layout)
    prompts = truncate_prompts(texts[:200], lengths[:200], tok)
    assert all(p is not None for p in prompts)
    for text, prompt, n in zip(texts[:200], prompts, lengths[:200], strict=True):
        assert is_token_prefix(prompt, text, tok) and not prompt[-1].isspace()
        assert text[len(prompt)].isspace() or not llama_layout  # fallback cuts at whitespace
        assert len(ids(tok, prompt)) <= n or " " not in prompt


class CallOnlyTokenizer:
    """Only `__call__`, no Rust backend, like a Python-only tokenizer (ids from the tiny BPE)."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def __call__(self, texts, add_special_tokens=False):
        return self.tok(texts, add_special_tokens=add_special_tokens)


def test_tokenizers_without_a_backend_take_the_whitespace_search(texts, lengths, tiny_tokenizer):
    prompts = truncate_prompts(texts[:100], lengths[:100], CallOnlyTokenizer(tiny_tokenizer))
    for text, prompt, n in zip(texts[:100], prompts, lengths[:100], strict=True):
        assert is_token_prefix(prompt, text, tiny_tokenizer)
        assert text[len(prompt)].isspace()
        assert len(ids(tiny_tokenizer, prompt)) <= n or " " not in prompt
