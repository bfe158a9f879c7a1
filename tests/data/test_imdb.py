"""The IMDB task: cleaned reviews over 200 characters, hash split, prompts of 8-16 tokens."""

from __future__ import annotations

import collections
import re

import pytest

from apl.data import TASKS
from apl.data.imdb import ImdbTask, prompt_length
from apl.data.imdb_reviews import clean_review, load_imdb_reviews, review_split
from apl.data.truncation import is_token_prefix
from apl.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def reviews():
    """All 25,000 cleaned reviews by uid."""
    return {r.uid: r for r in load_imdb_reviews("all")}


@pytest.fixture(scope="module")
def prompts(tiny_tokenizer):
    """Both splits' prompts, cut for the tiny tokenizer with seed 0."""
    task = TASKS.build("imdb")
    return {split: task.load_prompts(split, tiny_tokenizer, seed=0) for split in ("train", "test")}


def test_reviews_are_imdb_only_cleaned_and_each_text_once(reviews):
    # 25,000 IMDB rows (the Rotten Tomatoes rows are gone), of which 98 repeat a text
    assert len(reviews) == 24_902
    assert len({r.text for r in reviews.values()}) == len(reviews)  # a duplicate is one prompt
    assert collections.Counter(r.label for r in reviews.values()) == {0: 12_431, 1: 12_471}
    assert not any(re.search(r"<br\s*/?>", r.text, re.I) for r in reviews.values())
    assert clean_review("Good.<br /><br />Really  good. ") == "Good. Really good."


def test_split_is_a_deterministic_function_of_the_text(reviews):
    train = {r.uid for r in load_imdb_reviews("train")}
    test = {r.uid for r in load_imdb_reviews("test")}
    assert not train & test and len(train | test) == len(reviews)
    assert 0.08 < len(test) / len(reviews) < 0.12
    for review in list(reviews.values())[:500]:
        assert review_split(review.text) == ("test" if review.uid in test else "train")


def test_prompts_cover_exactly_the_reviews_over_200_characters(prompts, reviews):
    train, test = ({p.uid for p in prompts[s]} for s in ("train", "test"))
    assert not train & test
    kept = {uid for uid, r in reviews.items() if len(r.text) > 200}
    assert train | test == kept and len(kept) < len(reviews)
    assert len(train) + len(test) == len(prompts["train"]) + len(prompts["test"])  # uids unique


def test_prompts_are_boundary_safe_beginnings_of_their_reviews(prompts, reviews, tiny_tokenizer):
    for prompt in prompts["test"][:300]:
        review = reviews[prompt.uid]
        assert prompt.label == review.label and prompt.reference is None
        assert is_token_prefix(prompt.text, review.text, tiny_tokenizer)
        assert not prompt.text[-1].isspace()
        n = len(tiny_tokenizer(prompt.text, add_special_tokens=False).input_ids)
        assert n <= prompt_length(0, prompt.uid, 8, 16) or " " not in prompt.text


def test_prompt_lengths_are_uniform_in_8_to_16_and_independent_of_row_order(prompts):
    uids = [p.uid for p in prompts["train"]]
    counts = collections.Counter(prompt_length(0, uid, 8, 16) for uid in uids)
    assert sorted(counts) == list(range(8, 17))
    assert all(abs(c / len(uids) - 1 / 9) < 0.015 for c in counts.values())
    assert [prompt_length(0, u, 8, 16) for u in reversed(uids[:50])] == [
        prompt_length(0, u, 8, 16) for u in uids[:50]
    ][::-1]
    assert [prompt_length(1, u, 8, 16) for u in uids[:50]] != [
        prompt_length(0, u, 8, 16) for u in uids[:50]
    ]


def test_loading_again_gives_the_same_prompts_and_another_seed_other_cuts(prompts, tiny_tokenizer):
    fresh = ImdbTask()
    assert fresh.load_prompts("test", tiny_tokenizer, seed=0) == prompts["test"]
    other = fresh.load_prompts("test", tiny_tokenizer, seed=1)
    assert [p.uid for p in other] == [p.uid for p in prompts["test"]]
    changed = sum(a.text != b.text for a, b in zip(other, prompts["test"], strict=True))
    assert changed > len(other) // 2


def test_task_metadata_and_bad_options(tiny_tokenizer):
    task = TASKS.build("imdb")
    assert (task.baseline, task.judge_template, task.name) == ("initial", "sentiment", "imdb")
    with pytest.raises(ConfigError, match="min_prompt_tokens"):
        ImdbTask(min_prompt_tokens=20, max_prompt_tokens=16)
    with pytest.raises(DataError, match="'validation'"):
        task.load_prompts("validation", tiny_tokenizer)
