"""Labelled preferences built from real IMDB reviews: chosen is the positive review's snippet."""

from __future__ import annotations

import random

import pytest

from apl.types import Completion, Preference, Prompt


def make_preferences(tokenizer, n: int, seed: int = 0, flip: bool = False) -> list[Preference]:
    """`n` preferences: prompt = a review's first words; chosen/rejected = positive/negative.

    With `flip` the negative snippet is chosen instead. Lengths stay short (prompt 4-8 words,
    completions 6-12 tokens) so the tiny model trains in well under a second per epoch.
    """
    from apl.data.imdb_reviews import load_imdb_reviews

    reviews = load_imdb_reviews("train")  # sorted by label: take 300 of each
    pos = [r.text for r in reviews if r.label == 1][:300]
    neg = [r.text for r in reviews if r.label == 0][:300]
    rng = random.Random(seed)
    prefs = []
    for i in range(n):
        words = rng.choice(pos + neg).split()
        prompt = Prompt(uid=f"p{seed}-{i}", text=" ".join(words[: rng.randint(4, 8)]))
        good, bad = (_snippet(tokenizer, rng.choice(s), rng) for s in (pos, neg))
        chosen, rejected = (bad, good) if flip else (good, bad)
        prefs.append(Preference(prompt=prompt, chosen=chosen, rejected=rejected))
    return prefs


def _snippet(tokenizer, text: str, rng: random.Random) -> Completion:
    ids = tokenizer(" " + text, add_special_tokens=False)["input_ids"]
    start = rng.randint(0, max(0, len(ids) - 12))
    ids = ids[start : start + rng.randint(6, 12)]
    return Completion(text=tokenizer.decode(ids), token_ids=tuple(ids))


@pytest.fixture()
def preferences(tiny_model_and_tokenizer) -> list[Preference]:
    """24 labelled pairs for the tiny model's tokenizer."""
    return make_preferences(tiny_model_and_tokenizer[1], 24)
