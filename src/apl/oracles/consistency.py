"""Judge self-consistency (paper Figure 1): label the same pairs twice, report agreement ± SE.

The second labelling uses `draw=1`, a different cache key and (for the offline judge) a
different noise draw, so it is a genuine second opinion rather than a cache hit. Pairs where
either labelling is INVALID are left out of the agreement and counted separately.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apl.errors import ConfigError, DataError
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle
from apl.types import Message, Verdict, conversation_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsistencyResult:
    """Agreement of one judge at one temperature between two labellings of the same pairs."""

    judge: str
    temperature: float | None
    num_pairs: int
    num_valid: int  # pairs where both labellings gave A, B or tie
    agreement: float
    stderr: float
    spent_usd: float

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain dict for JSON and tables."""
        return dict(self.__dict__)


def agreement(first: list[Verdict], second: list[Verdict]) -> tuple[float, float, int]:
    """(share of valid pairs labelled the same, its standard error sqrt(p(1-p)/n), n)."""
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if Verdict.INVALID not in (a, b)]
    n = len(pairs)
    if n == 0:
        return float("nan"), float("nan"), 0
    p = sum(a is b for a, b in pairs) / n
    return p, math.sqrt(p * (1 - p) / n), n


def measure_consistency(
    oracle: Oracle, requests: list[JudgeRequest], judge: str, temperature: float | None
) -> ConsistencyResult:
    """Label `requests` twice (draw 0, then draw 1) and compare."""
    first = oracle.judge_batch(
        [JudgeRequest(r.prompt, r.completion_a, r.completion_b, 0) for r in requests]
    )
    second = oracle.judge_batch(
        [JudgeRequest(r.prompt, r.completion_a, r.completion_b, 1) for r in requests]
    )
    p, se, n = agreement([j.verdict for j in first], [j.verdict for j in second])
    spent = oracle.stats.metrics()["judge/spent_usd"]
    return ConsistencyResult(judge, temperature, len(requests), n, p, se, spent)


def run_consistency(
    judges: list[str],
    temperatures: list[float],
    requests: list[JudgeRequest],
    options: dict[str, Any] | None = None,
    cache: JudgementCache | None = None,
    seed: int = 0,
) -> list[ConsistencyResult]:
    """Measure every judge at every temperature (each judge's own temperature option)."""
    results = []
    for name, temperature, kwargs in judge_settings(judges, temperatures, options):
        oracle = ORACLES.build(name, kwargs, cache=cache, seed=seed)
        logger.info("Labelling %d pairs twice with %s", len(requests), oracle.judge_id)
        results.append(measure_consistency(oracle, requests, name, temperature))
    return results


def judge_settings(
    judges: list[str], temperatures: list[float], options: dict[str, Any] | None = None
) -> list[tuple[str, float | None, dict[str, Any]]]:
    """(judge, temperature, options) for every run of `run_consistency`, each checked by
    building the judge without a cache: a bad name or option fails before any pair is made."""
    settings = []
    for name in judges:
        knob = ORACLES.get(name).temperature_option
        if temperatures and not knob:
            raise ConfigError(
                f"--judge {name} has no temperature option; drop --temperature for it."
            )
        for temperature in temperatures or [None]:
            kwargs = dict(options or {})
            if temperature is not None:
                kwargs[knob] = temperature
            ORACLES.build(name, kwargs, cache=None)
            settings.append((name, temperature, kwargs))
    return settings


def load_pairs(path: str | Path) -> list[JudgeRequest]:
    """Pairs from a JSONL file with keys `prompt` (text, or TRL-style messages), `a`, `b`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"--pairs file {path} does not exist; pass a JSONL file of {{prompt, a, b}}."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise DataError(
            f"--pairs file {path} cannot be read ({reason}); pass a JSONL file."
        ) from None
    requests = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = row["prompt"]
            if isinstance(prompt, list):  # TRL's conversational format: shown turn by turn
                prompt = conversation_text([Message(m["role"], m["content"]) for m in prompt])
            requests.append(JudgeRequest(str(prompt), str(row["a"]), str(row["b"])))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"--pairs {path} line {number}: {type(err).__name__} {err}; each line must be a "
                'JSON object like {"prompt": ..., "a": ..., "b": ...}.'
            ) from None
    if not requests:
        raise DataError(f"--pairs file {path} holds no pairs; add JSON lines of {{prompt, a, b}}.")
    return requests


def imdb_pairs(
    num_pairs: int, seed: int = 0, prompt_words: int = 12, completion_words: int = 20
) -> list[JudgeRequest]:
    """Text-only pairs from the IMDB test split: a review's opening, and two other reviews'
    continuations (words after their own openings) as completions A and B."""
    from apl.data.imdb_reviews import load_imdb_reviews

    reviews = [r.text.split() for r in load_imdb_reviews("test")]
    reviews = [w for w in reviews if len(w) >= prompt_words + completion_words]
    if len(reviews) < 3 * num_pairs:
        raise DataError(
            f"--num-pairs ({num_pairs}) needs {3 * num_pairs} test reviews, have {len(reviews)}; lower it."
        )
    picks = random.Random(seed).sample(reviews, 3 * num_pairs)
    cut = slice(prompt_words, prompt_words + completion_words)
    return [
        JudgeRequest(
            " ".join(picks[3 * i][:prompt_words]),
            " " + " ".join(picks[3 * i + 1][cut]),
            " " + " ".join(picks[3 * i + 2][cut]),
        )
        for i in range(num_pairs)
    ]


def consistency_markdown(results: list[ConsistencyResult]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| judge | temperature | pairs | valid | agreement | ± SE | spent USD |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        temp = "-" if r.temperature is None else f"{r.temperature:g}"
        lines.append(
            f"| {r.judge} | {temp} | {r.num_pairs} | {r.num_valid} | {r.agreement:.3f} | "
            f"{r.stderr:.3f} | {r.spent_usd:.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot_consistency(results: list[ConsistencyResult], path: str | Path) -> Path:
    """Bar chart of agreement ± SE per judge and temperature (like the paper's Figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        r.judge if r.temperature is None else f"{r.judge}\nT={r.temperature:g}" for r in results
    ]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(results)), 3.5))
    ax.bar(
        range(len(results)),
        [r.agreement for r in results],
        yerr=[r.stderr for r in results],
        capsize=4,
        color="#4c72b0",
    )
    ax.set_xticks(range(len(results)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("self-consistency (agreement)")
    ax.set_title(
        f"Judge self-consistency over {results[0].num_pairs if results else 0} pairs, labelled twice"
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
