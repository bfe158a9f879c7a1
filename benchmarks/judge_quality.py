"""What the offline judge grades: held-out accuracy, fluency cases, probability, speed.

Prints, for the default `imdb_judge` and the same judge without its fluency and repetition
terms (`fluency_weight=0, distinct_weight=0`, the judge before issue 11):
- the classifier's held-out accuracy (full test reviews, 40-word openings; docs/ORACLES.md);
- pairwise accuracy on held-out pairs (a positive and a negative review's 40-word opening, the
  split neither the classifier nor the LM was fitted on) and the fitted preference temperature;
- constructed cases: a fluent positive completion against its own words shuffled (3 orders),
  half of it said three times, every word doubled, and a salad of positive words: how often
  the fluent one wins;
- judge throughput on fresh pairs (no cache).

    python benchmarks/judge_quality.py
"""

from __future__ import annotations

import random
import time

import numpy as np

from apl.oracles.base import JudgeRequest
from apl.oracles.fluency_model import load_fluency_model, preference_pairs
from apl.oracles.imdb_judge import ImdbJudge
from apl.oracles.sentiment_model import load_sentiment_model

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
    ("Honestly,", " this is one of the best films I have seen this year, funny and warm."),
    ("The director", " keeps the story moving, and the cast is excellent from start to finish."),
]
SALAD = " great wonderful amazing best loved brilliant superb excellent perfect."


def rivals(completion: str) -> dict[str, str]:
    """The degraded versions of a fluent completion, by kind."""
    words = completion.split()
    out = {}
    for seed in range(3):
        shuffled = list(words)
        random.Random(seed).shuffle(shuffled)
        out[f"shuffled {seed}"] = " " + " ".join(shuffled)
    half = " ".join(words[: len(words) // 2])
    out["half said 3 times"] = f" {half} {half} {half}"
    out["every word doubled"] = " " + " ".join(w for w in words for _ in (0, 1))
    return out


def wins(judge: ImdbJudge, cases: list[tuple[str, str, str]]) -> float:
    """Share of (prompt, fluent, rival) cases the fluent side wins, asked in both orders."""
    requests = [JudgeRequest(p, f, r) for p, f, r in cases] + [
        JudgeRequest(p, r, f) for p, f, r in cases
    ]
    verdicts = [j.verdict.value for j in judge.judge_batch(requests)]
    n = len(cases)
    return (sum(v == "A" for v in verdicts[:n]) + sum(v == "B" for v in verdicts[n:])) / (2 * n)


def main() -> None:
    """Print the tables."""
    classifier = load_sentiment_model()
    fluency = load_fluency_model()
    judges = {
        "imdb_judge (default)": ImdbJudge(),
        "without fluency terms": ImdbJudge(fluency_weight=0.0, distinct_weight=0.0),
    }
    print(
        f"classifier: held-out accuracy {classifier.metrics['test_accuracy']:.3f} (full "
        f"reviews), {classifier.metrics['test_accuracy_40_words']:.3f} (40-word openings); "
        f"fit {classifier.metrics['fit_s']:.1f} s"
    )
    m = fluency.metrics
    print(
        f"fluency LM: {m['corpus_words']:.0f} words, {m['vocabulary']:.0f} types, "
        f"{m['calibration_texts']:.0f} held-out calibration reviews; real 16-word continuations "
        f"SLOR {m['slor_mean_16']:.2f} ± {m['slor_std_16']:.2f}, distinct-n "
        f"{m['distinct_mean_16']:.3f} ± {m['distinct_std_16']:.3f}; fit {m['fit_s']:.1f} s"
    )
    pos, neg = preference_pairs()
    by_kind: dict[str, list[tuple[str, str, str]]] = {}
    for prompt, completion in FLUENT:
        for kind, rival in rivals(completion).items():
            by_kind.setdefault(kind.split(" ")[0] if "shuffled" in kind else kind, []).append(
                (prompt, completion, rival)
            )
    by_kind["positive word salad"] = [(p, c, SALAD) for p, c in FLUENT]
    print("\n| | " + " | ".join(judges) + " |\n|---|" + "---:|" * len(judges))
    rows = {
        f"pairwise accuracy, {len(pos)} held-out pairs": lambda j: np.mean(
            [
                x.verdict.value == "A"
                for x in j.judge_batch([JudgeRequest("", p, n) for p, n in zip(pos, neg)])
            ]
        ),
        "preference temperature tau": lambda j: j.preference_temperature,
        **{
            f"fluent beats {kind} ({len(cases)} cases x 2 orders)": (
                lambda j, cases=cases: wins(j, cases)
            )
            for kind, cases in by_kind.items()
        },
    }
    for name, fn in rows.items():
        print(f"| {name} | " + " | ".join(f"{fn(j):.3f}" for j in judges.values()) + " |")
    rng = random.Random(1)
    words = " ".join(pos + neg).split()
    fresh = [
        JudgeRequest(
            "The film", " " + " ".join(rng.sample(words, 18)), " " + " ".join(rng.sample(words, 18))
        )
        for _ in range(2000)
    ]
    judge = ImdbJudge()
    start = time.perf_counter()
    judge.judge_batch(fresh)
    print(f"\nthroughput: {len(fresh) / (time.perf_counter() - start):.0f} fresh pairs/s")


if __name__ == "__main__":
    main()
