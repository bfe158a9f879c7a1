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
    # 40-word reviews: the paper's completions are short. Sentiment alone got 0.80-0.85 here;
    # the fluency and repetition terms add their own opinion on real text (docs/ORACLES.md).
    assert sum(right) / len(right) >= 0.77


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


FLUENT = [
    (
        "This movie was",
        " a wonderful surprise, with a moving story and great acting from the cast.",
    ),
    ("I watched it twice", " and loved it more the second time, thanks to the beautiful score."),
    (
        "The plot of this film",
        " is simple, but the actors make it work and the ending is touching.",
    ),
]


@pytest.mark.parametrize(("prompt", "completion"), FLUENT)
def test_a_fluent_positive_review_beats_its_own_words_shuffled_or_repeated(
    judge, prompt, completion
):
    words = completion.split()
    rivals = []
    for seed in range(3):  # the same words in another order: the same sentiment score
        shuffled = list(words)
        random.Random(seed).shuffle(shuffled)
        rivals.append(" " + " ".join(shuffled))
    half = " ".join(words[: len(words) // 2])
    rivals += [f" {half} {half} {half}", " " + " ".join(w for w in words for _ in (0, 1))]
    for rival in rivals:
        for request, fluent_side in (
            (JudgeRequest(prompt, completion, rival), Verdict.A),
            (JudgeRequest(prompt, rival, completion), Verdict.B),
        ):
            (j,) = judge.judge_batch([request])
            assert j.verdict is fluent_side, (rival, j.rationale)
            p_fluent = j.probability if fluent_side is Verdict.A else 1 - j.probability
            assert 0.5 < p_fluent < 1


def test_fluency_and_repetition_terms_on_constructed_cases(judge):
    prompts = ["This movie was"] * 4
    completions = [
        " a wonderful surprise, with a moving story and great acting from the cast.",
        " great wonderful amazing best loved brilliant superb excellent perfect.",  # word salad
        " a great film and it's great. It's a great film is great and great",  # the issue's
        " a wonderful surprise, a wonderful surprise, a wonderful surprise.",
    ]
    fluency, repetition = judge.fluency.penalties(prompts, completions)
    assert fluency[0] == 0 and repetition[0] == 0  # real-looking text is not charged
    assert fluency[1] > 1.5  # SLOR standard deviations below real continuations
    assert repetition[2] > 3 and repetition[3] > 3
    stats = judge.fluency.metrics
    assert stats["calibration_texts"] > 300 and stats["corpus_words"] > 500_000


def test_probability_agrees_with_the_verdict_and_is_calibrated_on_held_out_pairs(judge):
    from apl.oracles.fluency_model import preference_pairs

    pos, neg = preference_pairs()
    requests = [JudgeRequest("", p, n) for p, n in zip(pos, neg, strict=True)]
    judgements = judge.judge_batch(requests)
    for j in judgements:
        assert (j.probability > 0.5) == (j.verdict is Verdict.A)
    accuracy = np.mean([j.verdict is Verdict.A for j in judgements])
    mean_p = np.mean([j.probability for j in judgements])
    assert accuracy >= 0.78  # held out from the classifier and the LM
    assert abs(mean_p - accuracy) < 0.1  # tau is the maximum-likelihood fit on these pairs
    assert 0.05 < judge.preference_temperature < 1.0
    noisy = ImdbJudge(noise_temperature=0.3, cache_dir=judge.cache_dir)
    assert noisy.preference_temperature == 0.3  # a noisy judge's probability is its own draw's


def test_judge_identity_names_both_models_and_their_library_versions(judge):
    from importlib.metadata import version

    from apl.oracles.fluency_model import FLUENCY_VERSION

    assert f"sk{version('scikit-learn')}" in judge.judge_id
    assert f"{FLUENCY_VERSION}-np{np.__version__}" in judge.judge_id
    assert ImdbJudge(fluency_weight=0.0).judge_id != judge.judge_id


@pytest.mark.slow
def test_both_fits_are_bit_reproducible(sentiment_dir, judge):
    """A fresh fit equals the session's cached one exactly (seeded saga, counted LM)."""
    from apl.oracles.fluency_model import fit_fluency_model
    from apl.oracles.sentiment_model import fit_sentiment_model

    cached = load_sentiment_model(sentiment_dir)
    fresh = fit_sentiment_model()
    assert np.array_equal(fresh.classifier.coef_, cached.classifier.coef_)
    assert fresh.vectorizer.vocabulary_ == cached.vectorizer.vocabulary_
    lm_cached, lm_fresh = judge.fluency, fit_fluency_model()
    assert lm_fresh.lm.vocab == lm_cached.lm.vocab
    for name in ("tri_keys", "tri_counts", "mid_cont", "uni_freq"):
        assert np.array_equal(getattr(lm_fresh.lm, name), getattr(lm_cached.lm, name))
    for name in ("slor_mean", "slor_std", "distinct_mean", "distinct_std"):
        assert np.array_equal(getattr(lm_fresh, name), getattr(lm_cached, name))
