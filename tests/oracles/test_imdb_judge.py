"""The offline IMDB judge: real classifier, real held-out reviews, deterministic verdicts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from apl.data.imdb_reviews import load_imdb_reviews
from apl.errors import ConfigError
from apl.oracles import ORACLES
from apl.oracles.base import JudgeRequest
from apl.oracles.consistency import measure_consistency
from apl.oracles.imdb_judge import ImdbJudge, degeneracy_penalty
from apl.oracles.sentiment_model import _read, load_sentiment_model, model_path
from apl.oracles.verdict import parse_verdict
from apl.types import Verdict


@pytest.fixture()
def judge(sentiment_dir):
    return ImdbJudge(cache_dir=str(sentiment_dir))


def test_classifier_accuracy_on_held_out_reviews(sentiment_dir):
    model = load_sentiment_model(sentiment_dir)
    assert model_path(sentiment_dir).is_file()  # cached on disk after the first build
    assert (
        model.metrics["test_accuracy"] >= 0.86 and model.metrics["test_accuracy_40_words"] >= 0.74
    )
    test = load_imdb_reviews("test")[:600]  # never seen in training (hash split)
    predicted = model.positive_probability([r.text for r in test]) > 0.5
    assert (predicted == np.array([r.label for r in test])).mean() >= 0.85


def test_judge_prefers_the_positive_review_of_a_held_out_pair(judge):
    test = load_imdb_reviews("test")
    pos = [r.text for r in test if r.label == 1][:150]
    neg = [r.text for r in test if r.label == 0][:150]
    rng = random.Random(0)
    requests, positive_is_a = [], []
    for p, n in zip(pos, neg, strict=True):
        a_first = rng.random() < 0.5
        p40, n40 = " ".join(p.split()[:40]), " ".join(n.split()[:40])
        requests.append(JudgeRequest("", p40, n40) if a_first else JudgeRequest("", n40, p40))
        positive_is_a.append(a_first)
    verdicts = [j.verdict for j in judge.judge_batch(requests)]
    right = [(v is Verdict.A) == a for v, a in zip(verdicts, positive_is_a, strict=True)]
    assert sum(right) / len(right) >= 0.8  # 40-word reviews: the paper's completions are short


@pytest.mark.parametrize(
    ("degenerate", "fluent"),
    [
        (" great great great great great great great great", " a decent story with fine acting."),
        (
            " I loved it. I loved it. I loved it. I loved it. I loved it.",
            " I loved the music and the cast.",
        ),
        ("", " it was a nice surprise."),
        (" %%%$$$### @@@ ~~~ ^^^", " it was fine overall."),
    ],
)
def test_repetition_and_degenerate_text_lose(judge, degenerate, fluent):
    prompt = "This movie was"
    assert degeneracy_penalty(prompt, degenerate) > degeneracy_penalty(prompt, fluent)
    (j,) = judge.judge_batch([JudgeRequest(prompt, degenerate, fluent)])
    assert j.verdict is Verdict.B
    (k,) = judge.judge_batch([JudgeRequest(prompt, fluent, degenerate)])
    assert k.verdict is Verdict.A


def test_verdicts_are_deterministic_tie_only_when_equal_and_rationale_quotes_scores(
    judge, sentiment_dir
):
    request = JudgeRequest("The plot", " was moving and beautiful.", " was boring and awful.")
    (j,) = judge.judge_batch([request])
    assert j.verdict is Verdict.A and j.cost_usd == 0 and j.shown_order == "AB"
    assert parse_verdict(j.rationale) is Verdict.A and "P(positive)" in j.rationale
    assert ImdbJudge(cache_dir=str(sentiment_dir)).judge(request) == j
    (tie,) = judge.judge_batch([JudgeRequest("The plot", " same.", " same.")])
    assert tie.verdict is Verdict.TIE


def test_noise_temperature_lowers_self_consistency(sentiment_dir):
    requests = [
        JudgeRequest("", " ".join(r.text.split()[:30]), " ".join(s.text.split()[:30]))
        for r, s in zip(
            load_imdb_reviews("test")[:80], load_imdb_reviews("test")[80:160], strict=True
        )
    ]
    agreement = {
        t: measure_consistency(
            ImdbJudge(noise_temperature=t, cache_dir=str(sentiment_dir)), requests, "imdb_judge", t
        ).agreement
        for t in (0.0, 0.05, 1.0)
    }
    assert agreement[0.0] == 1.0
    assert agreement[0.0] >= agreement[0.05] > agreement[1.0]
    assert agreement[1.0] < 0.8  # near coin-flipping
    noisy = ImdbJudge(noise_temperature=1.0, cache_dir=str(sentiment_dir), seed=3)
    again = ImdbJudge(noise_temperature=1.0, cache_dir=str(sentiment_dir), seed=3)
    assert [j.verdict for j in noisy.judge_batch(requests)] == [
        j.verdict for j in again.judge_batch(requests)
    ]
    assert noisy.judge_id != ImdbJudge(noise_temperature=1.0, cache_dir=str(sentiment_dir)).judge_id


def test_registry_build_with_cache_and_wrong_template(sentiment_dir, cache):
    judge = ORACLES.build(
        "imdb_judge", {"cache_dir": str(sentiment_dir)}, cache=cache, seed=0, template="sentiment"
    )
    request = JudgeRequest("Wow,", " superb.", " terrible.")
    judge.judge_batch([request])
    (hit,) = judge.judge_batch([request])
    assert hit.from_cache and hit.verdict is Verdict.A
    (as_tuple,) = judge.judge_batch([("Wow,", " superb.", " terrible.")])  # plain tuples work too
    assert as_tuple.from_cache and as_tuple.verdict is Verdict.A
    with pytest.raises(
        ConfigError, match="judge template is 'summarization'; use oracle.name=openai_judge"
    ):
        ORACLES.build("imdb_judge", {}, cache=None, seed=0, template="summarization")


def test_unreadable_cached_model_is_ignored(tmp_path):
    broken = tmp_path / "model.pkl"
    broken.write_bytes(b"not a pickle")
    assert _read(broken) is None and _read(tmp_path / "missing.pkl") is None
