"""Argilla 2.x's own formats: a `Dataset.to_disk` directory out, its records export in.

Written and read as Argilla 2.x documents them (no argilla package needed):
- `rg.Settings.for_ranking()`: text fields `instruction`, `response1`, `response2` and a
  `RankingQuestion` named `ranking` over `response1` / `response2`
  (https://docs.argilla.io/latest/reference/argilla/settings/settings/);
- `rg.Dataset.to_disk(path)` / `from_disk(path)`: `path/.argilla/settings.json`,
  `path/.argilla/dataset.json` and `path/records.json`
  (https://docs.argilla.io/latest/how_to_guides/import_export/);
- a record as `Record.to_dict()` / `records.to_list(flatten=False)` gives it:
  `{"id", "fields", "metadata", "suggestions", "responses": {"ranking": [{"value", "user_id"}]},
  "vectors", "_server_id"}`; a ranking value is the option values best first
  (`["response2", "response1"]`), or the API's `[{"value", "rank"}]` (equal ranks: a tie).
  A response with `"status": "discarded"` is a skip, `"draft"` is not an answer yet.
`response1` is the completion apl shows first (left); answers map back through the pair's
stored shown order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apl.errors import LabelImportError
from apl.labelling.label_studio import KEY_TAG_CHARS
from apl.types import ImportedAnswer

QUESTION = "ranking"
OPTIONS = ("response1", "response2")  # shown first (left, "A"), shown second (right, "B")
SETTINGS_FILE = ".argilla/settings.json"
DATASET_FILE = ".argilla/dataset.json"
RECORDS_FILE = "records.json"


def _field(name: str, title: str) -> dict:
    return {
        "id": None,
        "name": name,
        "title": title,
        "required": True,
        "description": None,
        "settings": {"type": "text", "use_markdown": False},
        "dataset_id": None,
        "inserted_at": None,
        "updated_at": None,
    }


def settings(instruction: str) -> dict:
    """`Settings.for_ranking()`'s fields and question, serialised, with apl's instruction."""
    options = [{"value": v, "text": t, "description": None} for v, t in zip(OPTIONS, "AB")]
    return {
        "guidelines": f"{instruction}\nRank A first if A is better. Discard a pair to skip it.",
        "questions": [
            {
                "id": None,
                "name": QUESTION,
                "settings": {"type": "ranking", "options": options},
                "title": instruction,
                "description": "Equal ranks mean a tie.",
                "required": True,
                "inserted_at": None,
                "updated_at": None,
            }
        ],
        "fields": [
            _field("instruction", "Prompt"),
            _field(OPTIONS[0], "A"),
            _field(OPTIONS[1], "B"),
        ],
        "vectors": [],
        "metadata": [],
        "allow_extra_metadata": True,
    }


def dataset(name: str, instruction: str, annotators_per_pair: int) -> dict:
    """The dataset model: k annotators per pair is Argilla's overlap `min_submitted`."""
    return {
        "id": None,
        "name": name,
        "status": "draft",
        "guidelines": settings(instruction)["guidelines"],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": annotators_per_pair},
        "workspace_id": None,
        "last_activity_at": None,
        "inserted_at": None,
        "updated_at": None,
    }


def records(pairs: Sequence[Any]) -> list[dict]:
    """One record per open pair (`PairState`), texts in shown order."""
    out = []
    for pair in pairs:
        left, right = pair.shown
        tag = pair.key[:KEY_TAG_CHARS]
        out.append(
            {
                "id": f"apl-{pair.id}-{tag}",
                "fields": {"instruction": pair.prompt, OPTIONS[0]: left, OPTIONS[1]: right},
                "metadata": {
                    "apl_pair": pair.id,
                    "apl_key": tag,
                    "apl_round": pair.round,
                    "apl_purpose": pair.purpose,
                },
                "suggestions": {},
                "responses": {},
                "vectors": {},
                "_server_id": None,
            }
        )
    return out


def write_dataset(directory: Path, name: str, instruction: str, k: int, pairs: Sequence) -> None:
    """Write the `to_disk` layout into an empty `directory`."""
    (directory / ".argilla").mkdir(parents=True, exist_ok=True)
    files = {
        SETTINGS_FILE: settings(instruction),
        DATASET_FILE: dataset(name, instruction, k),
        RECORDS_FILE: records(pairs),
    }
    for rel, content in files.items():
        (directory / rel).write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")


def _fail(where: str, problem: str) -> LabelImportError:
    return LabelImportError(f"Argilla records, {where}: {problem}; nothing was imported.")


def _ranking_choice(value: Any, where: str) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if sorted(value) == sorted(OPTIONS):
            return "left" if value[0] == OPTIONS[0] else "right"
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        ranks = {v.get("value"): v.get("rank") for v in value}
        if set(ranks) == set(OPTIONS) and all(isinstance(r, int) for r in ranks.values()):
            first, second = (ranks[o] for o in OPTIONS)
            return "tie" if first == second else ("left" if first < second else "right")
    raise _fail(where, f"ranking {value!r} does not rank response1 and response2")


def _pair_of(record: dict, where: str) -> tuple[int, str]:
    meta = record.get("metadata") or {}
    if "apl_pair" in meta and "apl_key" in meta:
        pair, tag = meta["apl_pair"], meta["apl_key"]
    else:
        parts = str(record.get("id") or "").split("-")
        if len(parts) != 3 or parts[0] != "apl":
            raise _fail(where, "no metadata.apl_pair and no apl-<pair>-<key> id (not from apl)")
        pair, tag = parts[1], parts[2]
    try:
        return int(pair), str(tag)
    except (TypeError, ValueError):
        raise _fail(where, f"pair id {pair!r} is not a number") from None


def read_records(data: Any) -> list[ImportedAnswer]:
    """Answers from Argilla records as `to_list(flatten=False)` / `records.json` hold them."""
    if not isinstance(data, list):
        raise _fail("top level", "expected a JSON list of records")
    answers = []
    for i, record in enumerate(data, start=1):
        where = f"record {i}"
        if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
            raise _fail(where, "not a record with fields (a cut or edited file?)")
        pair_id, tag = _pair_of(record, where)
        responses = (record.get("responses") or {}).get(QUESTION) or []
        if not isinstance(responses, list):
            raise _fail(where, f"responses.{QUESTION} is not a list")
        for j, response in enumerate(responses, start=1):
            spot = f"{where}, response {j}"
            if not isinstance(response, dict) or not response.get("user_id"):
                raise _fail(spot, "a response without user_id (a cut or edited file?)")
            status = response.get("status", "submitted")
            if status == "draft":
                continue
            if status == "discarded":
                choice = "skip"
            elif status == "submitted":
                choice = _ranking_choice(response.get("value"), spot)
            else:
                raise _fail(spot, f"unknown response status {status!r}")
            answers.append(
                ImportedAnswer(pair_id, tag, f"argilla:{response['user_id']}", choice, None, spot)
            )
    return answers
