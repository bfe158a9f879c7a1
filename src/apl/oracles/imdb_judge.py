"""The offline IMDB judge (default without an API): the paper's rubric, scored locally.

"Most positive sentiment, grammatically correct, consistent, avoids repetition": each full
review (prompt + completion) scores P(positive) from a TF-IDF classifier, minus a degeneracy
penalty (repeated 3-grams, stuttered words, non-text characters, an empty completion), minus
fluency and repetition terms from `fluency_model` (how many standard deviations the
completion's SLOR under a held-out word trigram LM, and its distinct-n, fall below real review
text). The higher score wins; TIE only when the scores are exactly equal.

Every judgement carries the judge's own P(A preferred) = sigmoid((s_A - s_B) / tau), tau fitted
by maximum likelihood on held-out positive-vs-negative review pairs (or `noise_temperature`
when that is set), so evaluation can report an expected win-rate. `noise_temperature` > 0
emulates a weaker judge: A wins with probability sigmoid((s_A - s_B) / T), drawn from an RNG
seeded by (seed, draw, texts), so the same request always gets the same answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from apl.errors import ConfigError
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle, text_digest
from apl.oracles.fluency_model import (
    FLUENCY_VERSION,
    FluencyModel,
    load_fluency_model,
    preference_pairs,
)
from apl.oracles.sentiment_model import SentimentModel, load_sentiment_model, sentiment_identity
from apl.types import Judgement, Verdict

_WORD = re.compile(r"[a-z0-9']+")
_TEXTLIKE = re.compile(r"[A-Za-z0-9\s.,;:!?'\"()\-]")


def degeneracy_penalty(prompt: str, completion: str) -> float:
    """0 for fluent text, up to about 3 for empty or pure repetition.

    Sum of: the share of word 3-grams in the review that repeat an earlier one, the share of
    words equal to the word before, the share of the completion's characters that are not
    text-like, and 0.5 if the completion has no word at all.
    """
    words = _WORD.findall(f"{prompt}{completion}".lower())
    trigrams = list(zip(words, words[1:], words[2:]))
    repeated_trigrams = 1 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    stutter = sum(a == b for a, b in zip(words, words[1:])) / max(1, len(words) - 1)
    stripped = completion.strip()
    nontext = 1 - len(_TEXTLIKE.findall(stripped)) / len(stripped) if stripped else 0.0
    empty = 0.5 if not _WORD.search(completion.lower()) else 0.0
    return repeated_trigrams + stutter + nontext + empty


@ORACLES.register("imdb_judge")
class ImdbJudge(Oracle):
    """Local, free, deterministic sentiment-and-fluency judge for the IMDB task."""

    temperature_option = "noise_temperature"

    def __init__(
        self,
        noise_temperature: float = 0.0,  # 0: deterministic; 0.05-0.5 emulates weaker judges
        repetition_weight: float = 1.0,  # how much degeneracy costs against sentiment (0..1)
        # Per standard deviation below real text: word salad (SLOR ~2.5 SD below) costs 0.37,
        # the "great film is great" sample (distinct-n 6 SD below) 0.19 (docs/ORACLES.md).
        fluency_weight: float = 0.15,
        distinct_weight: float = 0.03,
        cache_dir: str | None = None,  # where the fitted models live ($APL_CACHE_DIR)
        template: str = "sentiment",  # injected by the task: this judge only knows sentiment
        cache: JudgementCache | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(cache=cache, seed=seed)
        if template != "sentiment":
            raise ConfigError(
                f"imdb_judge scores sentiment but the task's judge template is {template!r}; "
                "use oracle.name=openai_judge for this task."
            )
        weights = {
            "noise_temperature": noise_temperature,
            "repetition_weight": repetition_weight,
            "fluency_weight": fluency_weight,
            "distinct_weight": distinct_weight,
        }
        for name, value in weights.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"oracle.{name} ({value!r}) must be a number >= 0.")
        self.noise_temperature = noise_temperature
        self.repetition_weight = repetition_weight
        self.fluency_weight = fluency_weight
        self.distinct_weight = distinct_weight
        self.cache_dir = cache_dir
        self._model: SentimentModel | None = None
        self._fluency: FluencyModel | None = None
        self._tau: float | None = None
        # Versions of both fitted models are in the identity: cached verdicts of another
        # classifier, LM or scikit-learn/numpy build are never mixed with these.
        self.judge_id = (
            f"imdb_judge:{sentiment_identity()}|{FLUENCY_VERSION}-np{np.__version__}"
            f"|rep={repetition_weight:g}|flu={fluency_weight:g}|dist={distinct_weight:g}"
            f"|T={noise_temperature:g}"
        )
        if noise_temperature > 0:
            self.judge_id += f"|seed={seed}"  # the seed picks the noise draws

    @property
    def model(self) -> SentimentModel:
        """The classifier, loaded (or fitted and cached) on first use."""
        if self._model is None:
            self._model = load_sentiment_model(Path(self.cache_dir) if self.cache_dir else None)
        return self._model

    @property
    def fluency(self) -> FluencyModel:
        """The trigram LM and its calibration, loaded (or fitted and cached) on first use."""
        if self._fluency is None:
            self._fluency = load_fluency_model(Path(self.cache_dir) if self.cache_dir else None)
        return self._fluency

    def score(self, prompts: list[str], completions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, P(positive)) of each full review: P(positive) minus the weighted penalties."""
        positive = self.model.positive_probability([p + c for p, c in zip(prompts, completions)])
        penalty = np.array([degeneracy_penalty(p, c) for p, c in zip(prompts, completions)])
        fluency, repetition = self.fluency.penalties(prompts, completions)
        charge = (
            self.repetition_weight * penalty
            + self.fluency_weight * fluency
            + self.distinct_weight * repetition
        )
        return positive - charge, positive

    @property
    def preference_temperature(self) -> float:
        """tau of P(A) = sigmoid((s_A - s_B) / tau): `noise_temperature`, else fitted once.

        Fitted by maximum likelihood on held-out pairs (a positive and a negative review's
        opening, the LM's calibration split): the judge's probability of being right.
        """
        if self.noise_temperature > 0:
            return self.noise_temperature
        if self._tau is None:
            pos, neg = preference_pairs()
            s_pos, _ = self.score([""] * len(pos), pos)
            s_neg, _ = self.score([""] * len(neg), neg)
            gap = s_pos - s_neg
            grid = np.exp(np.linspace(np.log(0.01), np.log(2.0), 400))
            nll = [np.logaddexp(0.0, -gap / t).sum() for t in grid]  # -log sigmoid(gap / t)
            self._tau = float(grid[int(np.argmin(nll))])
        return self._tau

    def judge(self, request: JudgeRequest) -> Judgement:
        """Judge one request (see `judge_many` for the batched path)."""
        out: list[Judgement] = []
        self.judge_many([request], lambda _, judgement: out.append(judgement))
        return out[0]

    def judge_many(
        self, requests: list[JudgeRequest], done: Callable[[int, Judgement], None]
    ) -> None:
        """Score all 2N reviews in one vectorised pass, then decide each pair."""
        if not requests:
            return
        prompts = [r.prompt for r in requests] * 2
        completions = [r.completion_a for r in requests] + [r.completion_b for r in requests]
        scores, positive = self.score(prompts, completions)
        tau = self.preference_temperature
        n = len(requests)
        for i, request in enumerate(requests):
            pair = (scores[i], scores[n + i])
            done(i, self._decide(request, pair, (positive[i], positive[n + i]), tau))

    def _decide(
        self, request: JudgeRequest, s: tuple[float, float], p: tuple[float, float], tau: float
    ) -> Judgement:
        s_a, s_b = float(s[0]), float(s[1])
        z = (s_a - s_b) / tau
        p_a = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
        noise = ""
        if s_a == s_b:
            verdict = Verdict.TIE
        elif self.noise_temperature == 0:
            verdict = Verdict.A if s_a > s_b else Verdict.B
        else:
            digest = text_digest(
                "noise",
                self.seed,
                request.draw,
                request.prompt,
                request.completion_a,
                request.completion_b,
            )
            u = np.random.default_rng(int(digest[:16], 16)).random()
            verdict = Verdict.A if u < p_a else Verdict.B
            noise = f" Noisy judge (T={self.noise_temperature:g}) picks A with p={p_a:.3f}."
        winner = {Verdict.A: "A", Verdict.B: "B"}.get(verdict, "neither")
        rationale = (
            f"Comparison: A scores {s_a:.3f} (P(positive) {p[0]:.3f}, penalty "
            f"{float(p[0]) - s_a:.3f}) and B scores {s_b:.3f} (P(positive) {p[1]:.3f}, penalty "
            f"{float(p[1]) - s_b:.3f}), so {winner} is better; P(A preferred) {p_a:.3f}.{noise}\n"
            f"Preferred: {verdict.value}"
        )
        return Judgement(
            verdict=verdict,
            rationale=rationale,
            shown_order="AB",
            judge_id=self.judge_id,
            probability=p_a,
        )
