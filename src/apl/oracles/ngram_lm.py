"""An interpolated Kneser-Ney word trigram language model over integer ids, vectorised.

Counts are kept as sorted numpy key arrays ((w1 * V + w2) * V + w3 and its marginals), so
scoring thousands of words is a few `searchsorted` calls. Discount 0.75 at both orders; the
unigram level is the continuation distribution with add-half smoothing. `slor` subtracts the
plain unigram log-prob (SLOR), so a rare word is not mistaken for a disfluent one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DISCOUNT = 0.75  # Kneser-Ney's usual absolute discount
MIN_COUNT = 2  # rarer words are <unk>: a singleton's probability is not estimable
UNK, BOS = 0, 1


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
