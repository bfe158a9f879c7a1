"""Evaluate a final model again, the way the loop does: shared by the retraining benchmarks.

`noise.py`, `trainer_equivalence.py` and `pseudo_labels.py` each put a run's final model (or a
retrained one) into `build_components(config)`'s policy and judge it on the run's own
evaluation prompts against its own baseline completions.
"""

from __future__ import annotations

METRICS = ("eval/win_rate", "eval/expected_win_rate")


def judge_final(built, prompts, baseline, seed: int) -> dict[str, float | None]:
    """Win-rate and expected win-rate of `built`'s current policy against `baseline`.

    `prompts`: the run's evaluation prompts; `baseline`: {uid: Completion} from its ledger;
    `seed`: the evaluation sampling stream (the run's own, or a fresh one).
    """
    from apl.evaluation.win_rate import evaluate
    from apl.loop.evaluating import eval_completions
    from apl.oracles import JudgeRequest

    made = eval_completions(built, prompts, seed)
    result = evaluate(
        prompts,
        [c.text for c in made],
        [baseline[p.uid].text for p in prompts],
        built.oracle.judge_batch,
        JudgeRequest,
        batch_size=256,
    ).result
    return {METRICS[0]: result.win_rate, METRICS[1]: result.expected}


def last_evaluated_round(record) -> int:
    """The last round of a run (`apl.reports.collect.RunRecord`) with a recorded win-rate."""
    return max(r for r in record.metrics if record.metrics[r].get(METRICS[0]) is not None)
