"""Win-rate scoring, the fixed per-seed eval subset, and evaluate() with a judge passed in."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from apl.errors import ConfigError, DataError
from apl.evaluation.win_rate import (
    WinRate,
    choose_eval_prompts,
    compute_win_rate,
    evaluate,
)
from apl.types import Judgement, Prompt, Verdict

SCORE = {Verdict.A: 1.0, Verdict.TIE: 0.5, Verdict.B: 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_win_rate_and_stderr_match_a_direct_computation(seed):
    rng = random.Random(seed)
    verdicts = [rng.choice(list(Verdict)) for _ in range(rng.randint(5, 200))]
    result = compute_win_rate(verdicts)
    scores = [SCORE[v] for v in verdicts if v is not Verdict.INVALID]
    assert result.n == len(scores)
    assert result.win_rate == pytest.approx(statistics.fmean(scores))
    assert result.stderr == pytest.approx(statistics.stdev(scores) / math.sqrt(len(scores)))
    assert result.wins == verdicts.count(Verdict.A)
    assert result.ties == verdicts.count(Verdict.TIE)
    assert result.losses == verdicts.count(Verdict.B)
    assert result.invalid == verdicts.count(Verdict.INVALID)


def test_ties_count_half_and_invalid_is_excluded():
    result = compute_win_rate(["A", "tie", "B", "invalid", "invalid", "A"])
    assert (result.n, result.invalid) == (4, 2)
    assert result.win_rate == pytest.approx(2.5 / 4)


def test_degenerate_counts():
    nothing = compute_win_rate([Verdict.INVALID] * 3)
    assert nothing.n == 0 and math.isnan(nothing.win_rate) and math.isnan(nothing.stderr)
    single = compute_win_rate([Verdict.A])
    assert single.win_rate == 1.0 and math.isnan(single.stderr)
    sweep = compute_win_rate([Verdict.A] * 10)
    assert (sweep.win_rate, sweep.stderr) == (1.0, 0.0)


def test_metrics_use_the_keys_status_reads():
    metrics = compute_win_rate(["A", "B", "invalid"]).as_metrics()
    assert metrics["eval/win_rate"] == 0.5 and metrics["eval/invalid"] == 1.0
    assert "eval/win_rate_stderr" in metrics
    assert set(WinRate.__dataclass_fields__) == {
        "win_rate",
        "stderr",
        "n",
        "wins",
        "ties",
        "losses",
        "invalid",
        "expected",
        "expected_stderr",
    }
    assert "eval/expected_win_rate" not in metrics  # no judge probabilities: no expected rate


def test_expected_win_rate_is_the_mean_judge_probability_over_valid_verdicts():
    from apl.evaluation.win_rate import evaluate
    from apl.types import Judgement

    answers = {
        "a": Judgement(Verdict.A, probability=0.9),
        "b": Judgement(Verdict.B, probability=0.2),
        "c": Judgement(Verdict.INVALID),  # excluded, like from the binary rate
        "d": Judgement(Verdict.TIE, probability=0.5),
    }
    prompts = [Prompt(uid, uid) for uid in answers]
    result = evaluate(
        prompts, ["x"] * 4, ["y"] * 4, lambda reqs: [answers[r[0]] for r in reqs]
    ).result
    assert result.win_rate == pytest.approx(1.5 / 3)
    assert result.expected == pytest.approx(1.6 / 3)
    sd = math.sqrt(sum((p - 1.6 / 3) ** 2 for p in (0.9, 0.2, 0.5)) / 2)
    assert result.expected_stderr == pytest.approx(sd / math.sqrt(3))
    metrics = result.as_metrics()
    assert metrics["eval/expected_win_rate"] == pytest.approx(1.6 / 3)
    partial = dict(answers, d=Judgement(Verdict.TIE))  # one valid verdict without a probability
    result = evaluate(
        prompts, ["x"] * 4, ["y"] * 4, lambda reqs: [partial[r[0]] for r in reqs]
    ).result
    assert result.expected is None and "eval/expected_win_rate" not in result.as_metrics()


# --- the fixed per-seed eval subset -------------------------------------------------------

POOL = [Prompt(f"test-{i:04d}", f"review {i}") for i in range(500)]


def test_subset_depends_only_on_seed_and_uids():
    first = choose_eval_prompts(POOL, 64, seed=3)
    shuffled = POOL[:]
    random.Random(9).shuffle(shuffled)
    assert choose_eval_prompts(shuffled, 64, seed=3) == first
    assert len({p.uid for p in first}) == 64
    assert {p.uid for p in choose_eval_prompts(POOL, 64, seed=4)} != {p.uid for p in first}


def test_a_smaller_subset_is_a_prefix_of_a_larger_one():
    assert choose_eval_prompts(POOL, 128, seed=1)[:32] == choose_eval_prompts(POOL, 32, seed=1)


def test_subset_is_spread_over_the_pool_not_the_first_rows():
    chosen = sorted(int(p.uid.split("-")[1]) for p in choose_eval_prompts(POOL, 100, seed=0))
    assert chosen[0] < 50 and chosen[-1] > 450


def test_subset_bad_input():
    with pytest.raises(ConfigError, match=r"evaluation.num_prompts \(501\) > test prompts \(500\)"):
        choose_eval_prompts(POOL, 501, seed=0)
    with pytest.raises(DataError, match="duplicate uid 'test-0001'"):
        choose_eval_prompts(POOL + [POOL[1]], 3, seed=0)


# --- evaluate -----------------------------------------------------------------------------


class LengthJudge:
    """Stand-in for an oracle (a sibling stage, so passed in, never imported): the longer
    completion wins, equal lengths tie, an empty completion is an invalid verdict."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str, str]]] = []

    def judge_batch(self, requests: list[tuple[str, str, str]]) -> list[Judgement]:
        self.batches.append(requests)
        out = []
        for _, a, b in requests:
            if not a or not b:
                verdict = Verdict.INVALID
            else:
                verdict = (
                    Verdict.A if len(a) > len(b) else Verdict.B if len(b) > len(a) else Verdict.TIE
                )
            out.append(Judgement(verdict, rationale=f"{len(a)} vs {len(b)}", cost_usd=0.001))
        return out


def eval_case(n: int = 10):
    prompts = [Prompt(f"e{i}", f"prompt {i}") for i in range(n)]
    policy = ["x" * (i % 4) for i in range(n)]  # 0..3 chars
    baseline = ["y" * 2 for _ in range(n)]  # 2 chars
    return prompts, policy, baseline


def test_evaluate_puts_the_policy_on_side_a_and_scores():
    prompts, policy, baseline = eval_case(10)
    judge = LengthJudge()
    result = evaluate(prompts, policy, baseline, judge.judge_batch, batch_size=4)
    assert [len(b) for b in judge.batches] == [4, 4, 2]
    assert judge.batches[0][1] == ("prompt 1", "x", "yy")
    # lengths 0,1,2,3,0,1,2,3,0,1 vs 2: invalid x3, loss x3, tie x2, win x2
    assert (
        result.result.invalid,
        result.result.losses,
        result.result.ties,
        result.result.wins,
    ) == (3, 3, 2, 2)
    assert result.result.win_rate == pytest.approx(3 / 7)
    assert list(result.judgements) == [p.uid for p in prompts]


def test_evaluate_uses_the_request_factory():
    prompts, policy, baseline = eval_case(3)
    seen = []

    def judge_batch(requests):
        seen.extend(requests)
        return [Judgement(Verdict.A)] * len(requests)

    evaluate(
        prompts,
        policy,
        baseline,
        judge_batch,
        make_request=lambda p, a, b: {"p": p, "a": a, "b": b},
    )
    assert seen[2] == {"p": "prompt 2", "a": "xx", "b": "yy"}


def test_evaluate_never_rebuys_held_verdicts_and_reports_each_batch():
    prompts, policy, baseline = eval_case(10)
    held = {"e3": Judgement(Verdict.B, rationale="stored"), "e7": Judgement(Verdict.TIE)}
    judge, committed = LengthJudge(), []
    result = evaluate(
        prompts,
        policy,
        baseline,
        judge.judge_batch,
        held=held,
        on_judged=committed.append,
        batch_size=3,
    )
    asked = [req[0] for batch in judge.batches for req in batch]
    assert "prompt 3" not in asked and "prompt 7" not in asked and len(asked) == 8
    assert [sorted(c) for c in committed] == [["e0", "e1", "e2"], ["e4", "e5", "e6"], ["e8", "e9"]]
    assert result.judgements["e3"].rationale == "stored"
    assert list(result.judgements) == [p.uid for p in prompts]


def test_evaluate_rejects_mismatched_inputs():
    prompts, policy, baseline = eval_case(3)
    with pytest.raises(ValueError, match="same length"):
        evaluate(prompts, policy[:2], baseline, LengthJudge().judge_batch)
    with pytest.raises(ValueError, match="returned 1 judgements for 3"):
        evaluate(prompts, policy, baseline, lambda reqs: [Judgement(Verdict.A)])
