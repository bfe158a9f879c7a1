"""The disk cache of cut prompt pools: real files under a temporary `APL_CACHE_DIR`.

A warm load must give exactly the prompts a fresh cut gives (uid, text, reference, label, in
order), a file is only reused for the same tokenizer, options, seed and split, a damaged file
is cut again with a warning, and a cache that cannot be written never stops a run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from apl.data import imdb
from apl.data.imdb import ImdbTask
from apl.data.prompt_cache import cache_path, read_prompts, tokenizer_fingerprint


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty APL_CACHE_DIR; the session's shared prompt cache is switched off."""
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("APL_PROMPT_CACHE_DIR", raising=False)
    return tmp_path / "cache"


def files(cache_dir: Path) -> list[Path]:
    """The cached pools (temporary files would show up here too)."""
    return sorted((cache_dir / "prompts").glob("*")) if (cache_dir / "prompts").is_dir() else []


def rows(prompts) -> list[tuple]:
    return [(p.uid, p.text, p.reference, p.label, p.messages) for p in prompts]


def forbid_cutting(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, a load that cuts (or even reads the reviews) fails the test."""

    def cut(*args, **kwargs):
        raise AssertionError("prompts were cut again instead of read from the cache")

    monkeypatch.setattr(imdb, "truncate_prompts", cut)
    monkeypatch.setattr(imdb, "load_imdb_reviews", cut)


def test_a_second_load_reads_the_file_and_gives_exactly_the_fresh_cut(
    cache_dir, tiny_tokenizer, tiny_model_dir, monkeypatch
):
    assert files(cache_dir) == []
    fresh = ImdbTask().load_prompts("test", tiny_tokenizer, seed=3)
    assert len(fresh) > 2000 and [f.suffix for f in files(cache_dir)] == [".json"]

    forbid_cutting(monkeypatch)
    reloaded = AutoTokenizer.from_pretrained(tiny_model_dir)  # as a new process would load it
    warm = ImdbTask().load_prompts("test", reloaded, seed=3)
    assert warm == fresh  # every field, in order
    assert rows(warm) == rows(fresh)
    assert all(type(p.label) is int and p.reference is None for p in warm)
    assert len(files(cache_dir)) == 1


def test_apl_prompt_cache_dir_moves_only_the_prompts(
    cache_dir, tmp_path, tiny_tokenizer, monkeypatch
):
    shared = tmp_path / "shared-prompts"
    monkeypatch.setenv("APL_PROMPT_CACHE_DIR", str(shared))
    fresh = ImdbTask().load_prompts("test", tiny_tokenizer, seed=3)
    assert files(cache_dir) == [] and len(list(shared.glob("imdb-*.json"))) == 1
    forbid_cutting(monkeypatch)
    assert ImdbTask().load_prompts("test", tiny_tokenizer, seed=3) == fresh


def test_what_decides_the_prompts_names_the_file(tiny_tokenizer, tiny_model_dir, monkeypatch):
    other = AutoTokenizer.from_pretrained(tiny_model_dir)
    other.add_tokens(["zzyzx"])  # one more token: another tokenizer
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tiny_tokenizer)
    assert tokenizer_fingerprint(object()) is None  # no Rust backend: never cached

    def path(task=None, split="test", tokenizer=tiny_tokenizer, seed=0):
        return cache_path((task or ImdbTask())._cache_key(split, tokenizer, seed))

    same = path(tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    assert same == path()  # the same tokenizer loaded again is the same file
    variants = [
        path(tokenizer=other),
        path(ImdbTask(min_prompt_tokens=4, max_prompt_tokens=6)),
        path(ImdbTask(max_prompt_tokens=17)),
        path(ImdbTask(min_review_chars=100)),
        path(seed=1),
        path(split="train"),
    ]
    monkeypatch.setattr(imdb, "_code_fingerprint", lambda: "edited cutting code")
    variants.append(path())
    assert len({path.name for path in [same, *variants]}) == 1 + len(variants)


def test_another_seed_does_not_read_the_first_seeds_file(cache_dir, tiny_tokenizer):
    first = ImdbTask().load_prompts("test", tiny_tokenizer, seed=0)
    second = ImdbTask().load_prompts("test", tiny_tokenizer, seed=1)
    assert len(files(cache_dir)) == 2
    assert [p.uid for p in second] == [p.uid for p in first]
    assert sum(a.text != b.text for a, b in zip(first, second, strict=True)) > len(first) // 2


def test_a_damaged_file_is_cut_again_with_a_warning(cache_dir, tiny_tokenizer, caplog):
    fresh = ImdbTask().load_prompts("test", tiny_tokenizer, seed=0)
    (path,) = files(cache_dir)
    whole = path.read_bytes()
    data = json.loads(whole)
    data["prompts"]["uid"][0] = 7  # parses, but a uid that is not a string
    damaged = [b"", whole[: len(whole) // 2], b"\x00garbage", json.dumps(data).encode()]
    for content in damaged:
        path.write_bytes(content)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="apl.data.prompt_cache"):
            again = ImdbTask().load_prompts("test", tiny_tokenizer, seed=0)
        assert again == fresh
        assert "unreadable" in caplog.text and str(path) in caplog.text
        assert path.read_bytes() == whole  # rewritten whole
        assert files(cache_dir) == [path]  # no temporary file left behind


def test_a_cache_that_cannot_be_written_only_warns(cache_dir, tiny_tokenizer, caplog):
    cache_dir.mkdir()
    (cache_dir / "prompts").write_text("a file where the prompts directory should be")
    for _ in range(2):  # nothing was stored, so the second load cuts (and warns) again
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="apl.data.prompt_cache"):
            prompts = ImdbTask().load_prompts("test", tiny_tokenizer, seed=0)
        assert "Could not cache prompts" in caplog.text
        assert rows(prompts) == rows(ImdbTask().load_prompts("test", tiny_tokenizer, seed=0))
    assert sorted(p.name for p in cache_dir.iterdir()) == ["prompts"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway")
def test_a_read_only_cache_dir_still_loads(cache_dir, tiny_tokenizer, caplog):
    (cache_dir / "prompts").mkdir(parents=True)
    (cache_dir / "prompts").chmod(0o555)
    try:
        with caplog.at_level(logging.WARNING, logger="apl.data.prompt_cache"):
            prompts = ImdbTask().load_prompts("test", tiny_tokenizer, seed=0)
        assert len(prompts) > 2000 and "Could not cache prompts" in caplog.text
        assert files(cache_dir) == []
    finally:
        (cache_dir / "prompts").chmod(0o755)


def test_the_file_holds_its_key_and_is_not_read_for_another(cache_dir, tiny_tokenizer):
    task = ImdbTask()
    prompts = task.load_prompts("test", tiny_tokenizer, seed=0)
    key = task._cache_key("test", tiny_tokenizer, 0)
    (path,) = files(cache_dir)
    assert read_prompts(path, key)[0] == prompts
    assert read_prompts(path, {**key, "seed": 1}) is None  # e.g. a hash collision: not used
