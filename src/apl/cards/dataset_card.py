"""The dataset card of a run's exported labels (`export/README.md`), as the Hub reads it."""

from __future__ import annotations

from typing import Any

from apl.cards.facts import RunFacts
from apl.cards.model_card import fmt, run_metadata

# Column -> (type, meaning). TRL's preference columns first; TRL's DPOTrainer drops the rest.
SCHEMA = {
    "prompt": ("string", "the prompt the policy continued"),
    "chosen": ("string", "the completion the judge preferred (prompt + chosen is the full text)"),
    "rejected": ("string", "the other completion"),
    "prompt_uid": ("string", "stable id of the prompt in its pool"),
    "round": ("int64", "the round whose acquisition picked the pair (1 = first)"),
    "rank": ("int64", "its rank among that round's candidates (0 = picked first)"),
    "score": ("float64", "the acquisition score it was ranked by"),
    "judge_id": ("string", "the judge's identity (model, template, settings)"),
    "shown_order": ("string", "`AB`, `BA` or `both`: the order the judge saw the pair in"),
    "rationale": ("string", "the judge's reply or reasoning"),
}
DATA_FILE = "preferences.jsonl"


def size_category(n: int) -> str:
    """The Hub's size bucket for `n` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M"


def _metadata(facts: RunFacts, num_rows: int) -> Any:
    from huggingface_hub import DatasetCardData

    return DatasetCardData(
        language=["en"] if facts.task in ("imdb", "tldr") else None,
        pretty_name=f"apl preference labels: {facts.run_name}",
        size_categories=[size_category(num_rows)],
        task_categories=["text-generation"],
        source_datasets=[facts.task_dataset] if facts.task_dataset else None,
        tags=["apl", "dpo", "preference", "active-learning"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILE}]}],
        apl=run_metadata(facts),
    )


def dataset_card_text(facts: RunFacts, num_rows: int) -> str:
    """The whole README.md: YAML metadata, then the card."""
    schema = "".join(
        f"| `{name}` | {kind} | {meaning} |\n" for name, (kind, meaning) in SCHEMA.items()
    )
    verdicts = "".join(
        f"| {kind} | {facts.verdicts.get(kind, 0)} |\n" for kind in ("A", "B", "tie", "invalid")
    )
    judges = ", ".join(f"`{j}`" for j in facts.judge_ids) or "-"
    options = ", ".join(
        f"{k}={fmt(v)}" for k, v in facts.acquisition_options.items() if k != "name"
    )
    gen = facts.generation
    body = f"""
# apl preference labels: {facts.run_name}

{num_rows} preference pairs in TRL's standard format (`prompt`, `chosen`, `rejected`), bought
by an active preference learning run of apl on the `{facts.task}` task (prompts from
{facts.task_source}). Load with
`datasets.load_dataset("json", data_files="{DATA_FILE}")` from this folder, or
`datasets.load_from_disk("preferences_dataset")`.

## How the pairs were chosen

Over {facts.rounds_done} rounds (of {facts.num_rounds} planned, label budget B =
{facts.label_budget}), each round sampled S = {facts.pool_size} fresh prompts, let the policy
(`{facts.base_model}` under DPO) write two completions per prompt (temperature
{fmt(gen.get("temperature"))}, {fmt(gen.get("min_new_tokens"))}-{fmt(gen.get("max_new_tokens"))}
new tokens), ranked the pairs with the acquisition function `{facts.acquisition}`
({options or "default options"}), and sent the best M = {facts.query_size} to the judge; a tie
or an invalid verdict was replaced by the next-ranked pair. The policy was fine-tuned on all
labels so far after every round, so later rounds were chosen by a better-trained model.

## Judge

{judges} (`{facts.oracle}`). Label verdicts, ties and invalid ones included (only A and B
become rows):

| verdict | count |
|---|---|
{verdicts}
Labelling cost ${facts.label_usd:.4f}.

## Schema

| column | type | meaning |
|---|---|---|
{schema}"""
    return f"---\n{_metadata(facts, num_rows).to_yaml()}\n---\n{body}"


def dataset_card(facts: RunFacts, num_rows: int) -> Any:
    """The card as a `huggingface_hub.DatasetCard`."""
    from huggingface_hub import DatasetCard

    return DatasetCard(dataset_card_text(facts, num_rows))
