"""The loop's evaluation step: fixed eval prompts, a baseline made once, the policy judged against it."""

from __future__ import annotations

import logging
from pathlib import Path

from apl.config import APLConfig
from apl.errors import ConfigError
from apl.evaluation.win_rate import WinRate, choose_eval_prompts, evaluate
from apl.loop.components import Components, derive_seed, torch_generator
from apl.oracles import JudgeRequest
from apl.policy.sampling import sample_completions
from apl.store.baseline_cache import BaselineCache, baseline_identity
from apl.store.fs import ensure_free_space
from apl.store.ledger import Ledger
from apl.types import Completion, Prompt

logger = logging.getLogger(__name__)


def baseline_kind(
    config: APLConfig, task_name: str, task_baseline: str, prompts: list[Prompt]
) -> str:
    """`initial` (the starting model's completions) or `reference` (the pool's references).

    A reference baseline needs a reference for EVERY eval prompt: a missing one would be judged
    as an empty completion, which the policy beats for free, inflating the win-rate.
    """
    wanted = config.evaluation.baseline
    if wanted == "auto":
        wanted = task_baseline
    missing = sum(not p.reference for p in prompts)
    if wanted == "reference" and missing:
        why = (
            "evaluation.baseline is 'reference'"
            if config.evaluation.baseline == "reference"
            else f"task {task_name!r} evaluates against references (evaluation.baseline auto)"
        )
        raise ConfigError(
            f"{why}, but {missing} of the {len(prompts)} eval prompts have no reference "
            "completion; give every prompt a reference (e.g. task.reference_column) or set "
            "evaluation.baseline=initial."
        )
    return wanted


def check_baseline(components: Components) -> None:
    """Refuse a reference baseline with eval prompts lacking references, before anything is saved."""
    config = components.config
    prompts = choose_eval_prompts(
        components.test_prompts, config.evaluation.num_prompts, config.seed
    )
    baseline_kind(config, components.task.name, components.task.baseline, prompts)


def eval_completions(components: Components, prompts: list[Prompt], seed: int) -> list[Completion]:
    """One completion per eval prompt from the current policy at the eval temperature."""
    config, loaded = components.config, components.loaded
    gen = config.generation
    samples = sample_completions(
        loaded.model,
        loaded.tokenizer,
        [list(ids) for ids in components.view.prompt_ids(prompts)],
        num_samples=1,
        temperature=config.evaluation.temperature,
        min_new_tokens=gen.min_new_tokens,
        max_new_tokens=gen.max_new_tokens,
        batch_size=gen.batch_size,
        generator=torch_generator(loaded.device, seed),
        autocast_dtype=loaded.autocast_dtype,
        compile=components.view.compile,
        stop=gen.stop,
    )
    return [s[0] for s in samples]


def prepare_evaluation(components: Components, ledger: Ledger, baselines: BaselineCache) -> None:
    """Fix the eval prompts and the baseline side; call before the policy first changes."""
    config = components.config
    prompts = ledger.eval_prompts()
    if not prompts:
        prompts = choose_eval_prompts(
            components.test_prompts, config.evaluation.num_prompts, config.seed
        )
        ledger.save_eval_prompts(prompts)
    if len(ledger.baseline()) == len(prompts):
        return
    kind = baseline_kind(config, components.task.name, components.task.baseline, prompts)
    if kind == "reference":
        completions = {p.uid: Completion(text=p.reference or "", token_ids=()) for p in prompts}
    else:
        identity = baseline_identity(config, components.fingerprint)
        completions = baselines.get(identity)
        if completions is None or any(p.uid not in completions for p in prompts):
            logger.info("Generating the initial model's eval completions (once per seed)")
            made = eval_completions(components, prompts, derive_seed(config.seed, "baseline"))
            completions = {p.uid: c for p, c in zip(prompts, made, strict=True)}
            baselines.put(identity, completions)
    ledger.save_baseline({p.uid: completions[p.uid] for p in prompts})


def evaluate_round(
    components: Components, ledger: Ledger, round: int, storage: tuple[Path, ...] = ()
) -> WinRate:
    """Win-rate of the policy after `round`; completions and verdicts are stored as they come."""
    config = components.config
    prompts = ledger.eval_prompts()
    held = ledger.eval_completions(round)
    if len(held) != len(prompts):
        made = eval_completions(components, prompts, derive_seed(config.seed, "eval", round))
        ledger.save_eval_completions(round, {p.uid: c for p, c in zip(prompts, made, strict=True)})
        held = ledger.eval_completions(round)
    baseline = ledger.baseline()
    judge = components.oracle.evaluation_judge()

    def judge_batch(requests: list[JudgeRequest]) -> list:
        ensure_free_space(*storage)  # before paying: each verdict must have somewhere to go
        return judge.judge_batch(requests)

    result = evaluate(
        prompts,
        [held[p.uid].text for p in prompts],
        [baseline[p.uid].text for p in prompts],
        judge_batch,
        JudgeRequest,
        held=ledger.eval_verdicts(round),
        on_judged=lambda new: ledger.record_eval_verdicts(round, new),
        batch_size=max(1, judge.concurrency),  # stored as they arrive
    )
    return result.result


def is_waypoint(config: APLConfig, labels: int, round: int) -> bool:
    """Evaluate after this round? Every round unless `evaluation.waypoints` lists label counts."""
    waypoints = config.evaluation.waypoints
    if round == config.loop.num_rounds:
        return True  # the final policy is always evaluated
    return waypoints is None or labels in waypoints
