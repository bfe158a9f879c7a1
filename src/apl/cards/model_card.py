"""The model card of a run's final model (`final_model/README.md`), as the Hub reads it."""

from __future__ import annotations

from typing import Any

import yaml

from apl.cards.facts import RunFacts

TAGS = ["apl", "dpo", "active-learning", "preference-learning"]


def fmt(value: Any) -> str:
    """A number or option for a table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_metadata(facts: RunFacts) -> dict[str, Any]:
    """The run in a machine-readable `apl:` block (model and dataset cards share it)."""
    final = facts.final
    return {
        "task": facts.task,
        "acquisition": facts.acquisition,
        "oracle": facts.oracle,
        "judge_id": facts.judge_ids[0] if len(facts.judge_ids) == 1 else facts.judge_ids,
        "label_budget": facts.label_budget,
        "query_size": facts.query_size,
        "pool_size": facts.pool_size,
        "rounds": facts.rounds_done,
        "labels": facts.labels,
        "verdicts": facts.verdicts,
        "spend_usd": round(facts.label_usd + facts.eval_usd, 6),
        "win_rate": None if final is None else final.win_rate,
        "win_rate_stderr": None if final is None else final.stderr,
        "baseline": facts.baseline,
        "base_model": facts.base_model,
        "base_model_fingerprint": facts.base_model_fingerprint,
        "seed": facts.seed,
    }


def _metadata(facts: RunFacts) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    final = facts.final
    results = []
    if final is not None and final.win_rate is not None:
        results.append(
            EvalResult(
                task_type="text-generation",
                dataset_type=facts.task,
                dataset_name=f"{facts.task} held-out prompts",
                dataset_split="test",
                metric_type="win_rate",
                metric_name=f"Win-rate vs {facts.baseline} (judge: {facts.oracle})",
                metric_value=round(final.win_rate, 4),
            )
        )
    return ModelCardData(
        model_name=facts.run_name,
        base_model=facts.base_model if facts.base_model_on_hub else None,
        library_name="peft" if facts.lora else "transformers",
        pipeline_tag="text-generation",
        tags=[*TAGS, facts.acquisition],
        datasets=[facts.task_dataset] if facts.task_dataset else None,
        eval_results=results or None,
        apl=run_metadata(facts),
    )


def _base_model_line(facts: RunFacts) -> str:
    if facts.base_model_on_hub:
        return f"[`{facts.base_model}`](https://huggingface.co/{facts.base_model})"
    where = "shipped with apl" if facts.base_model.startswith("builtin:") else "a local model"
    fingerprint = f", weights fingerprint `{facts.base_model_fingerprint}`"
    return f"`{facts.base_model}` ({where}{fingerprint if facts.base_model_fingerprint else ''})"


def _results(facts: RunFacts) -> str:
    final = facts.final
    if final is None:
        return "Not evaluated yet."
    head = (
        f"Final win-rate **{final.win_rate:.3f} ± {final.stderr or 0:.3f}** (standard error, "
        f"{fmt(final.num_judged)} prompts judged) against the {facts.baseline} completions, "
        f"after round {final.round} with {final.labels} labels.\n\n"
        "| round | labels | win-rate | ± stderr |\n|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {r.round} | {r.labels} | {fmt(r.win_rate)} | {fmt(r.stderr)} |\n"
        for r in facts.rounds
        if r.win_rate is not None
    )
    return head + rows


def _table(options: dict[str, Any]) -> str:
    rows = "".join(f"| `{k}` | {fmt(v)} |\n" for k, v in options.items())
    return "| option | value |\n|---|---|\n" + rows


def _usage(facts: RunFacts) -> str:
    if facts.lora and facts.base_model.startswith("builtin:"):
        # adapter_config.json names the built-in base by its path on the machine that trained
        # it; apl resolves the same base wherever it is installed.
        return (
            "```python\nfrom peft import PeftModel\nfrom transformers import "
            "AutoModelForCausalLM, AutoTokenizer\n\nfrom apl.policy.model import "
            f'resolve_model_path\n\nbase = AutoModelForCausalLM.from_pretrained(resolve_model_path("'
            f'{facts.base_model}"))\nmodel = PeftModel.from_pretrained(base, "final_model")\n'
            'tokenizer = AutoTokenizer.from_pretrained("final_model")\n```\n\nA LoRA adapter '
            "over apl's built-in base, which `resolve_model_path` finds wherever apl is installed "
            "(`adapter_config.json` holds its path on the machine that trained it)."
        )
    if facts.lora:
        return (
            "```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import "
            'AutoTokenizer\n\nmodel = AutoPeftModelForCausalLM.from_pretrained("final_model")\n'
            'tokenizer = AutoTokenizer.from_pretrained("final_model")\n```\n\nA LoRA adapter: '
            "its base model must be loadable under the name in `adapter_config.json`."
        )
    return (
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model = AutoModelForCausalLM.from_pretrained("final_model")\n'
        'tokenizer = AutoTokenizer.from_pretrained("final_model")\n```'
    )


def model_card_text(facts: RunFacts) -> str:
    """The whole README.md: YAML metadata, then the card."""
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(facts.verdicts.items())) or "none"
    judges = ", ".join(f"`{j}`" for j in facts.judge_ids) or "-"
    versions = ", ".join(f"{k} {v}" for k, v in facts.versions.items())
    config_yaml = yaml.safe_dump(facts.config, sort_keys=False)
    body = f"""
# {facts.run_name}

A causal language model fine-tuned with DPO by apl (active preference
learning): instead of labelling every pair, each round the acquisition function
`{facts.acquisition}` picked the {facts.query_size} most useful of the candidate pairs sampled
on {facts.pool_size} fresh prompts, and only those were sent to the judge `{facts.oracle}`.

- Base model: {_base_model_line(facts)}{" + LoRA adapter" if facts.lora else ""}
- Task: `{facts.task}`, prompts from {facts.task_source}
- Labels bought: {facts.labels} preference pairs over {facts.rounds_done} of {facts.num_rounds}
  rounds (budget {facts.label_budget}); all verdicts: {verdicts}
- Judge: {judges}
- Spend: ${facts.label_usd:.4f} on labels + ${facts.eval_usd:.4f} on evaluation;
  {facts.oracle_calls} judge calls, {facts.cache_hits} answered from the judgement cache

## Results

{_results(facts)}

## Use

{_usage(facts)}

## Training

DPO (`{facts.dpo.get("loss_type")}` loss, the paper's eq. 4) after every round:

{_table(facts.dpo)}

Candidate completions were sampled with:

{_table(facts.generation)}

Evaluation:

{_table(facts.evaluation)}

## Reproduce

Save the config below as `config.yaml`, then run `apl run config.yaml` (seed {facts.seed};
same hardware and thread count give the same run). A local base model or prompt file is named
here by its directory or file name only: put it at that path first.

```yaml
{config_yaml.rstrip()}
```

Versions: {versions}.
"""
    return f"---\n{_metadata(facts).to_yaml()}\n---\n{body}"


def model_card(facts: RunFacts) -> Any:
    """The card as a `huggingface_hub.ModelCard`."""
    from huggingface_hub import ModelCard

    return ModelCard(model_card_text(facts))
