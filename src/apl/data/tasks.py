"""The Task ABC (a prompt pool and how it is evaluated), the TASKS registry, prompt sampling."""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Any, Literal

import numpy as np

from apl.errors import DataError
from apl.registry import Registry
from apl.types import Prompt

Split = Literal["train", "test"]


class Task(ABC):
    """A prompt pool: `load_prompts(split, tokenizer, seed)` plus how runs on it are evaluated."""

    # What evaluation compares against: the initial model's completions, or the pool's references.
    baseline: Literal["initial", "reference"] = "initial"
    # The oracle template: "sentiment", "summarization", "chat" or a template file.
    judge_template: str = "sentiment"

    @property
    def name(self) -> str:
        """A short name for messages, e.g. `imdb`."""
        return getattr(self, "registry_name", type(self).__name__)

    def judge_template_for(self, tokenizer: Any) -> str:
        """The oracle template for prompts encoded by `tokenizer` (custom: `chat` when templated)."""
        return self.judge_template

    @abstractmethod
    def load_prompts(self, split: Split, tokenizer: Any, seed: int = 0) -> list[Prompt]:
        """The prompts of `split`, cut for `tokenizer` where cutting applies; uids are stable."""

    def check(self) -> None:  # noqa: B027 - a hook: most tasks have nothing to check early
        """Raise DataError now if the prompt source is unusable: called before any model loads."""


TASKS: Registry[Task] = Registry("task")


def check_split(split: str, pool: str) -> None:
    """Raise DataError unless `split` is `train` or `test`."""
    if split not in ("train", "test"):
        raise DataError(f"{pool}: split {split!r} is unknown; use 'train' or 'test'.")


def text_uid(prefix: str, text: str) -> str:
    """A uid from the text alone (`prefix-<12 hex>`), so it does not depend on row order."""
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def hash_split(text: str, test_fraction: float) -> Split:
    """Deterministic train/test assignment from a hash of the text."""
    digest = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")
    return "test" if digest < test_fraction * 2**64 else "train"


def sample_prompts(
    prompts: Sequence[Prompt],
    n: int,
    rng: np.random.Generator | random.Random | int,
    exclude_uids: Collection[str] = (),
    *,
    option: str = "n",
    pool: str = "the prompt pool",
) -> list[Prompt]:
    """`n` distinct prompts drawn at random from those whose uid is not in `exclude_uids`.

    `option` and `pool` only name things in the error raised when too few prompts are left.
    """
    if n < 0:
        raise DataError(f"`{option}` ({n}) is negative; pass a count of 0 or more.")
    excluded = set(exclude_uids)
    available = [p for p in prompts if p.uid not in excluded]
    if n > len(available):
        what = "unlabelled prompts" if excluded else "prompts"
        raise DataError(f"`{option}` ({n}) > {what} ({len(available)}) in {pool}; lower it.")
    if isinstance(rng, int):
        rng = np.random.default_rng(rng)
    if isinstance(rng, random.Random):
        picked = rng.sample(range(len(available)), n)
    else:
        picked = rng.choice(len(available), size=n, replace=False).tolist()
    return [available[i] for i in picked]
