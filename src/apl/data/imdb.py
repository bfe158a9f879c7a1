"""The IMDB task (paper Appendix B): complete a movie review from its first 8-16 tokens."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from apl.data.imdb_reviews import load_imdb_reviews
from apl.data.tasks import TASKS, Split, Task, check_split
from apl.data.truncation import truncate_prompts
from apl.errors import ConfigError
from apl.types import Prompt

logger = logging.getLogger(__name__)


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
        if len(prompts) < len(reviews):
            logger.warning(
                "imdb/%s: %d reviews had no safe prompt cut; dropped",
                split,
                len(reviews) - len(prompts),
            )
        logger.info(
            "imdb/%s: %d prompts of %d-%d tokens",
            split,
            len(prompts),
            self.min_prompt_tokens,
            self.max_prompt_tokens,
        )
        self._cache[(split, seed)] = (tokenizer, prompts)
        return list(prompts)
