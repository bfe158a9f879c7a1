"""Boundary-safe prompt cutting: a text's first ~L tokens, cut where re-tokenisation agrees.

The rule: take the first L tokens, then move the cut back to the nearest pre-token ("word")
boundary at or before token L, skipping boundaries that would leave trailing whitespace; if the
first word alone is longer than L tokens, keep that one word. The continuation then starts with
its own leading space (" word"), exactly as the tokenizer splits the whole text. Byte-level BPE
never merges across pre-tokens, so such a cut is safe by construction, and every cut is still
verified (encoding the prompt gives the text's first ids). Tokenizers without pre-tokens
(SentencePiece-style, Python-only), and any cut that fails the check, fall back to a verified
search over whitespace cuts, checked against the text's first few hundred characters. Only a
prefix of each text is tokenised (`PREFIX_CHARS`, grown where it holds too few tokens), so
20k reviews take a couple of seconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

PREFIX_CHARS = 160  # 16 tokens of English are ~60-100 characters even for a 512-token BPE
_WORD_END = re.compile(r"\S(?=\s)")
_RETRY, _NO_CUT = "retry", "no-cut"  # the prefix was too short; no pre-token cut fits


def _whitespace_cuts(text: str) -> list[int]:
    """Offsets just after each word that is followed by whitespace."""
    return [m.end() for m in _WORD_END.finditer(text)]


def _ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """`tokenizer(texts, add_special_tokens=False)["input_ids"]`, via the Rust backend if any."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the same encoder, without building a BatchEncoding (1.5x faster)
        return [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def is_token_prefix(prompt: str, text: str, tokenizer: Any) -> bool:
    """True if `text` starts with `prompt` and encoding `prompt` gives the first ids of `text`."""
    if not text.startswith(prompt):
        return False
    prompt_ids, text_ids = tokenizer([prompt, text], add_special_tokens=False)["input_ids"]
    return text_ids[: len(prompt_ids)] == prompt_ids


def _word_start(words: list[int | None], k: int) -> int:
    """Index of the first token of the pre-token that token `k` belongs to (0 if k < 0)."""
    while k > 0 and words[k - 1] == words[k]:
        k -= 1
    return max(k, 0)


def _choose_cut(text: str, prefix: str, encoding: Any, num_tokens: int) -> int | str | None:
    """How many tokens to keep, cut where a pre-token (word) ends; or None / _RETRY / _NO_CUT."""
    words = encoding.word_ids  # the pre-token each token came from
    whole = len(prefix) == len(text)
    stable = len(words) - 1  # the largest cut; a whole text keeps a token for the completion
    if not whole:  # a cut-off prefix may split its last two pre-tokens differently from the text
        stable = _word_start(words, _word_start(words, stable) - 1)
    if num_tokens > stable:
        return None if whole else _RETRY  # a whole text this short has nothing left to complete
    offsets = encoding.offsets

    def is_cut(k: int) -> bool:
        return words[k] != words[k - 1] and not prefix[offsets[k - 1][1] - 1].isspace()

    for k in range(num_tokens, 0, -1):  # nearest word boundary at or before token L
        if is_cut(k):
            return k
    for k in range(num_tokens + 1, stable + 1):  # the first word alone is longer than L tokens
        if is_cut(k):
            return k
    return _NO_CUT if whole else _RETRY


def _search_cuts(
    texts: list[str], num_tokens: list[int], tokenizer: Any, margin: int
) -> list[str | None]:
    """Fallback: per text, the longest verified whitespace cut of at most L tokens.

    If none fits, the shortest verified cut (one word); None if none verifies. A cut is
    checked against the ids of the text up to `margin` characters past the last candidate.
    """
    # Every word is at least one token, so no cut past the L-th word can fit in L tokens.
    cuts = [_whitespace_cuts(t)[:n] for t, n in zip(texts, num_tokens, strict=True)]
    heads = [t[: c[-1] + margin] if c else "" for t, c in zip(texts, cuts, strict=True)]
    head_ids = _ids(tokenizer, heads)
    flat = _ids(tokenizer, [t[:c] for t, cs in zip(texts, cuts, strict=True) for c in cs])
    out: list[str | None] = []
    start = 0
    for text, cs, ids_all, n in zip(texts, cuts, head_ids, num_tokens, strict=True):
        encoded, start = flat[start : start + len(cs)], start + len(cs)
        verified = [
            i
            for i, ids in enumerate(encoded)
            if len(ids) < len(ids_all) and ids_all[: len(ids)] == ids
        ]
        fitting = [i for i in verified if len(encoded[i]) <= n]
        pick = fitting[-1] if fitting else (verified[0] if verified else None)
        out.append(None if pick is None else text[: cs[pick]])
    return out


def truncate_prompts(
    texts: Sequence[str],
    num_tokens: Sequence[int],
    tokenizer: Any,
    prefix_chars: int = PREFIX_CHARS,
) -> list[str | None]:
    """For each text, its first ~`num_tokens[i]` tokens cut at a verified safe boundary.

    None where no safe cut leaves a non-empty continuation (the text is too short).
    """
    assert len(texts) == len(num_tokens), "one token count per text"
    assert all(n >= 1 for n in num_tokens), "token counts must be positive"
    out: list[str | None] = [None] * len(texts)
    kept: dict[int, list[int]] = {}  # text index -> the prompt's expected ids
    fast = getattr(tokenizer, "backend_tokenizer", None)
    if fast is not None and fast.pre_tokenizer is None:
        fast = None  # no pre-tokens, so no word ids: every cut goes to the whitespace search
    todo = list(range(len(texts))) if fast is not None else []
    fallback = [] if fast is not None else list(range(len(texts)))
    chars = prefix_chars
    while todo:
        prefixes = [texts[i][:chars] for i in todo]
        retry = []
        for i, prefix, enc in zip(
            todo, prefixes, fast.encode_batch(prefixes, add_special_tokens=False), strict=True
        ):
            cut = _choose_cut(texts[i], prefix, enc, num_tokens[i])
            if cut == _RETRY:
                retry.append(i)
            elif cut == _NO_CUT:
                fallback.append(i)
            elif cut is not None:
                out[i] = texts[i][: enc.offsets[cut - 1][1]]
                kept[i] = enc.ids[:cut]
        todo, chars = retry, chars * 4
    checked = sorted(kept)
    for i, ids in zip(checked, _ids(tokenizer, [out[i] for i in checked]), strict=True):
        if ids != kept[i]:  # e.g. a normaliser or a merge across pre-tokens
            out[i] = None
            fallback.append(i)
    if fallback:
        logger.debug(
            "%d of %d texts take the verified whitespace search", len(fallback), len(texts)
        )
        found = _search_cuts(
            [texts[i] for i in fallback], [num_tokens[i] for i in fallback], tokenizer, prefix_chars
        )
        for i, prompt in zip(fallback, found, strict=True):
            out[i] = prompt
    return out


def truncate_prompt(text: str, num_tokens: int, tokenizer: Any) -> str | None:
    """One text's first ~`num_tokens` tokens, cut at a verified safe boundary (or None)."""
    return truncate_prompts([text], [num_tokens], tokenizer)[0]
