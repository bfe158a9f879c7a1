"""Win-rate of the policy against a baseline on a fixed per-seed subset of test prompts.

The policy's completion is always request side A and the baseline's side B (the oracle
randomises the order it shows them in). A win scores 1, a tie 0.5, a loss 0; INVALID
verdicts are excluded from the rate and counted. When the judge gives its own P(A preferred)
(`Judgement.probability`, the offline judge does), the mean of those is the expected win-rate:
the same quantity without the coin-flip of each binary verdict, so it varies less between
evaluations. The judge is passed in, never imported.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from apl.errors import ConfigError, DataError
from apl.types import Judgement, Prompt, Verdict

_SCORES = {Verdict.A: 1.0, Verdict.TIE: 0.5, Verdict.B: 0.0}


@dataclass(frozen=True)
class WinRate:
    """Win-rate of side A with its standard error; invalid verdicts excluded from `n`."""

    win_rate: float  # mean per-item score (win 1, tie 0.5, loss 0); NaN when n == 0
    stderr: float  # sample std (ddof=1) of the per-item scores / sqrt(n); NaN when n < 2
    n: int  # valid verdicts
    wins: int
    ties: int
    losses: int
    invalid: int
    # Mean and standard error of the judge's P(policy preferred) over valid verdicts; None when
    # any valid verdict lacks a probability (e.g. an LLM judge).
    expected: float | None = None
    expected_stderr: float | None = None

    def as_metrics(self, prefix: str = "eval") -> dict[str, float]:
        """`eval/win_rate`, `eval/win_rate_stderr`, counts: the keys the ledger's status reads.

        Plus `eval/expected_win_rate` and its stderr when the judge gave probabilities.
        """
        out = {
            f"{prefix}/win_rate": self.win_rate,
            f"{prefix}/win_rate_stderr": self.stderr,
            f"{prefix}/num_judged": float(self.n),
            f"{prefix}/wins": float(self.wins),
            f"{prefix}/ties": float(self.ties),
            f"{prefix}/losses": float(self.losses),
            f"{prefix}/invalid": float(self.invalid),
        }
        if self.expected is not None:
            out[f"{prefix}/expected_win_rate"] = self.expected
            out[f"{prefix}/expected_win_rate_stderr"] = (
                math.nan if self.expected_stderr is None else self.expected_stderr
            )
        return out


def expected_win_rate(judgements: Iterable[Judgement]) -> tuple[float | None, float | None]:
    """(mean, stderr) of P(A preferred) over valid judgements; (None, None) if any lacks one."""
    probs = []
    for j in judgements:
        if Verdict(j.verdict) is Verdict.INVALID:
            continue
        if j.probability is None:
            return None, None
        probs.append(float(j.probability))
    if not probs:
        return None, None
    mean = sum(probs) / len(probs)
    if len(probs) < 2:
        return mean, None
    var = sum((p - mean) ** 2 for p in probs) / (len(probs) - 1)
    return mean, math.sqrt(var / len(probs))


def compute_win_rate(verdicts: Iterable[Verdict | str]) -> WinRate:
    """Score verdicts of (policy as A, baseline as B): A wins, B loses, tie half, invalid out."""
    counts = {v: 0 for v in Verdict}
    for verdict in verdicts:
        counts[Verdict(verdict)] += 1
    n = counts[Verdict.A] + counts[Verdict.TIE] + counts[Verdict.B]
    mean = math.nan
    stderr = math.nan
    if n:
        mean = sum(_SCORES[v] * counts[v] for v in _SCORES) / n
    if n >= 2:
        var = sum(counts[v] * (_SCORES[v] - mean) ** 2 for v in _SCORES) / (n - 1)
        stderr = math.sqrt(var / n)
    return WinRate(
        win_rate=mean,
        stderr=stderr,
        n=n,
        wins=counts[Verdict.A],
        ties=counts[Verdict.TIE],
        losses=counts[Verdict.B],
        invalid=counts[Verdict.INVALID],
    )


def _rank_key(seed: int, uid: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{uid}".encode()).digest()


def choose_eval_prompts(prompts: Sequence[Prompt], num_prompts: int, seed: int) -> list[Prompt]:
    """The fixed eval subset for `seed`: the `num_prompts` prompts ranked first by hash(seed, uid).

    It depends only on the seed and the uids (not on pool order or strategy), so every run
    with the same seed sees the same prompts, and a smaller subset is a prefix of a larger one.
    """
    uids = [p.uid for p in prompts]
    if len(set(uids)) != len(uids):
        dup = next(u for u in uids if uids.count(u) > 1)
        raise DataError(f"Test prompts hold duplicate uid {dup!r}; prompt uids must be unique.")
    if num_prompts > len(prompts):
        raise ConfigError(
            f"evaluation.num_prompts ({num_prompts}) > test prompts ({len(prompts)}); lower it."
        )
    return sorted(prompts, key=lambda p: _rank_key(seed, p.uid))[:num_prompts]


def _tuple_request(prompt: str, completion_a: str, completion_b: str) -> Any:
    return (prompt, completion_a, completion_b)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: the win-rate and every judgement by prompt uid (policy = A)."""

    result: WinRate
    judgements: dict[str, Judgement]


def evaluate(
    prompts: Sequence[Prompt],
    policy_texts: Sequence[str],
    baseline_texts: Sequence[str],
    judge_batch: Callable[[list[Any]], list[Judgement]],
    make_request: Callable[[str, str, str], Any] = _tuple_request,
    *,
    held: Mapping[str, Judgement] | None = None,
    on_judged: Callable[[dict[str, Judgement]], None] | None = None,
    batch_size: int = 64,
) -> Evaluation:
    """Judge policy (A) vs baseline (B) completions per prompt and compute the win-rate.

    Args:
        judge_batch: e.g. `oracle.judge_batch`; returns one Judgement per request, in order.
        make_request: builds one request from (prompt, completion_a, completion_b), e.g. the
            oracle's `JudgeRequest`; the default passes plain tuples.
        held: judgements already stored (by uid) from an interrupted evaluation; not re-asked.
        on_judged: called with each batch's new judgements by uid, so the caller can commit
            them before the next batch is bought.
    """
    if not len(prompts) == len(policy_texts) == len(baseline_texts):
        raise ValueError(
            f"prompts ({len(prompts)}), policy_texts ({len(policy_texts)}) and "
            f"baseline_texts ({len(baseline_texts)}) must have the same length"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size ({batch_size}) must be >= 1")
    judgements = {p.uid: held[p.uid] for p in prompts if held and p.uid in held}
    todo = [i for i, p in enumerate(prompts) if p.uid not in judgements]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        requests = [
            make_request(prompts[i].judge_text, policy_texts[i], baseline_texts[i]) for i in chunk
        ]
        answers = judge_batch(requests)
        if len(answers) != len(requests):
            raise ValueError(
                f"judge_batch returned {len(answers)} judgements for {len(requests)} requests"
            )
        new = {prompts[i].uid: answer for i, answer in zip(chunk, answers, strict=True)}
        if on_judged is not None:
            on_judged(new)
        judgements.update(new)
    ordered = {p.uid: judgements[p.uid] for p in prompts}
    expected, expected_se = expected_win_rate(ordered.values())
    result = replace(
        compute_win_rate(j.verdict for j in ordered.values()),
        expected=expected,
        expected_stderr=expected_se,
    )
    return Evaluation(result, ordered)
