"""Export the labelled preferences as TRL-style JSONL and as a `datasets` directory.

Each row holds TRL's preference columns `prompt`, `chosen`, `rejected`: plain text (TRL's
standard format; prompt + chosen is the full sequence the policy produced), or, when the
prompts are conversations, TRL's conversational format (`prompt` the messages the chat template
rendered, system turn included; `chosen` / `rejected` one assistant message each), which TRL's
DPOTrainer renders with the same template and `add_generation_prompt=True`. Plus
provenance columns that TRL's DPOTrainer drops as unused: `prompt_uid`, `round`, `rank`,
`score`, `judge_id`, `shown_order`, `rationale`, and `label_source`: `oracle` for a paid label,
`pseudo` for the policy's own preference (active-query acquisition), never to be mistaken for
a paid label (filter on it to keep only what the oracle said). Reference log-probs are deliberately not
exported under TRL's `ref_chosen_logps` names: TRL would take them as precomputed for
whatever model it trains, which is only right for the model that made them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apl.cards import dataset_card_text, gather_facts, model_card_text
from apl.errors import RunStoreError
from apl.store.fs import replace_dir_atomic, storage_errors, write_text_atomic
from apl.store.ledger import LabelledPair
from apl.store.run_dir import FINAL_MODEL_DIR, load_run_dir
from apl.types import Message, Preference

logger = logging.getLogger(__name__)

PREFERENCES_FILE = "preferences.jsonl"
DATASET_DIR = "preferences_dataset"
CARD = "README.md"  # the Hub's card file, beside the data (export/) and the weights (final_model/)
_METADATA = (
    "prompt_uid",
    "round",
    "rank",
    "score",
    "judge_id",
    "shown_order",
    "rationale",
    "label_source",
)


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and how many rows it holds."""

    jsonl_path: Path
    dataset_path: Path
    num_rows: int


def _preference(item: LabelledPair | Preference) -> Preference:
    return item.preference if isinstance(item, LabelledPair) else item


def is_conversational(items: Sequence[LabelledPair | Preference]) -> bool:
    """True if any preference's prompt is a conversation: the export is then conversational."""
    return any(_preference(item).prompt.messages for item in items)


def _reply(text: str) -> list[dict[str, str]]:
    return [Message("assistant", text).as_dict()]


def preference_rows(items: Sequence[LabelledPair | Preference]) -> list[dict[str, Any]]:
    """One TRL-style row per preference (conversational if any prompt is); ledger items add
    provenance columns."""
    chat = is_conversational(items)
    rows = []
    for item in items:
        pref = _preference(item)
        row: dict[str, Any] = {
            "prompt": pref.prompt.text,
            "chosen": pref.chosen.text,
            "rejected": pref.rejected.text,
            "prompt_uid": pref.prompt.uid,
        }
        if chat:
            turns = pref.prompt.messages or (Message("user", pref.prompt.text),)
            row.update(
                prompt=[m.as_dict() for m in turns],
                chosen=_reply(pref.chosen.text),
                rejected=_reply(pref.rejected.text),
            )
        if isinstance(item, LabelledPair):
            row.update(
                round=item.round,
                rank=item.rank,
                score=item.score,
                judge_id=item.judgement.judge_id,
                shown_order=item.judgement.shown_order,
                rationale=item.judgement.rationale,
                label_source=item.source,
            )
        rows.append(row)
    return rows


def _features(with_provenance: bool, chat: bool) -> Any:
    from datasets import Features, Value  # heavy import, only when exporting

    def side() -> Any:  # TRL's conversational format: a list of {"role", "content"}
        return [{"role": Value("string"), "content": Value("string")}] if chat else Value("string")

    columns = {"prompt": side(), "chosen": side(), "rejected": side()}
    columns["prompt_uid"] = Value("string")
    if with_provenance:
        columns.update(
            round=Value("int64"),
            rank=Value("int64"),
            score=Value("float64"),
            judge_id=Value("string"),
            shown_order=Value("string"),
            rationale=Value("string"),
            label_source=Value("string"),
        )
    return Features(columns)


def export_preferences(
    items: Sequence[LabelledPair | Preference], out_dir: str | Path
) -> ExportResult:
    """Write `preferences.jsonl` and `preferences_dataset/` (save_to_disk) under `out_dir`."""
    from datasets import Dataset

    out_dir = Path(out_dir)
    rows = preference_rows(items)
    with_provenance = all(isinstance(i, LabelledPair) for i in items)
    if not with_provenance:
        rows = [{k: v for k, v in r.items() if k not in _METADATA[1:]} for r in rows]
    with storage_errors("create the export directory", out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = out_dir / PREFERENCES_FILE
    write_text_atomic(jsonl_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    features = _features(with_provenance, is_conversational(items))
    columns = {name: [r[name] for r in rows] for name in features}
    dataset = Dataset.from_dict(columns, features=features)
    # One shard: labelled sets are small, and datasets 5.2 saves an empty set as zero shards
    # that load_from_disk then cannot read.
    dataset_path = replace_dir_atomic(
        out_dir / DATASET_DIR,
        lambda tmp: dataset.save_to_disk(str(tmp), num_shards=1),
        "export the dataset to",
    )
    logger.info("Exported %d preferences to %s and %s", len(rows), jsonl_path, dataset_path)
    return ExportResult(jsonl_path, dataset_path, len(rows))


def export_run(run_dir: str | Path, out_dir: str | Path | None = None) -> ExportResult:
    """Export a run's labelled set (A/B verdicts by round, rank) to `out_dir` or RUN_DIR/export,
    with its dataset card (README.md); rewrite RUN_DIR/final_model's model card if it exists."""
    run = load_run_dir(run_dir)
    if not run.ledger_path.is_file():
        raise RunStoreError(
            f"{run.path} has no {run.ledger_path.name} yet; run `apl resume {run.path}` first."
        )
    with run.open_ledger() as ledger:
        items = ledger.labelled()
        facts = gather_facts(run, ledger)
    result = export_preferences(items, out_dir if out_dir is not None else run.path / "export")
    write_text_atomic(result.jsonl_path.parent / CARD, dataset_card_text(facts, result.num_rows))
    if (run.path / FINAL_MODEL_DIR).is_dir():
        write_text_atomic(run.path / FINAL_MODEL_DIR / CARD, model_card_text(facts))
    return result
