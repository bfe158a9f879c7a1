"""Stop strings (`generation.stop`): where a sampled completion ends when text marks the end.

A stop string can span tokens, so it is looked for in decoded text, after sampling. The
completion keeps its tokens up to and including the one that completes the first stop string
(as an end-of-turn token is kept), and its text ends just before the string (as an API's `stop`
does). Log-probs, rewards and DPO then use exactly the kept tokens. Tokens are decoded with
their special tokens, so a special token's text (say `<|im_end|>`) works as a stop string too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _has_stop(tokenizer: Any, token_ids: Sequence[int], stop: Sequence[str]) -> bool:
    text = tokenizer.decode(list(token_ids), skip_special_tokens=False)
    return any(s in text for s in stop)


def stop_length(tokenizer: Any, token_ids: Sequence[int], stop: Sequence[str]) -> int | None:
    """Tokens to keep: the shortest prefix whose text holds a stop string; None if none does.

    One decode when no stop string occurs; else a binary search (about log2(n) decodes).
    """
    if not stop or not token_ids or not _has_stop(tokenizer, token_ids, stop):
        return None
    low, high = 1, len(token_ids)  # invariant: the prefix of `high` tokens holds a stop string
    while low < high:
        mid = (low + high) // 2
        if _has_stop(tokenizer, token_ids[:mid], stop):
            high = mid
        else:
            low = mid + 1
    return high


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to (not including) the earliest stop string in it."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[: min(found)] if found else text
