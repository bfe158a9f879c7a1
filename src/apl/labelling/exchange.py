"""`apl label export` / `apl label import`: the open pairs out to a tool, its answers back in.

Export writes the pairs still waiting for answers; import reads the tool's export, maps each
answer through the pair's stored shown order and stores them all in one transaction (or none,
with a one-line error). The format of an import is recognised from the file itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from apl.errors import LabelImportError, RunStoreError
from apl.labelling import argilla, label_studio
from apl.store.fs import replace_dir_atomic, storage_errors
from apl.store.label_import import ImportSummary
from apl.store.label_queue import LabelQueue

FORMATS = ("label-studio", "argilla")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    files: list[Path]
    pairs: int


def export_open_pairs(
    queue: LabelQueue, fmt: str, out: Path, instruction: str, k: int, name: str
) -> ExportResult:
    """Write the queue's waiting pairs into directory `out` in `fmt`'s import format."""
    pairs = queue.waiting()
    if not pairs:
        raise RunStoreError(
            f"No pairs are waiting for answers in {queue.path}; start or resume the run so it "
            "queues the next batch, then export."
        )

    def fill(tmp: Path) -> None:
        if fmt == "label-studio":
            (tmp / "label_config.xml").write_text(label_studio.labelling_config(instruction))
            (tmp / "tasks.json").write_text(
                json.dumps(label_studio.tasks(pairs), indent=1, ensure_ascii=False) + "\n"
            )
        else:
            argilla.write_dataset(tmp, name, instruction, k, pairs)

    replace_dir_atomic(out, fill, "export the open pairs to")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    return ExportResult(out, files, len(pairs))


def _load(path: Path) -> tuple[object, str | None]:
    """The parsed JSON and the format it looks like (None: cannot tell)."""
    if path.is_dir():
        path = path / argilla.RECORDS_FILE
        if not path.is_file():
            raise LabelImportError(
                f"{path.parent} holds no {argilla.RECORDS_FILE}; pass an Argilla `to_disk` "
                "directory or a Label Studio JSON export file."
            )
    with storage_errors("read", path):
        if not path.is_file():
            raise LabelImportError(f"{path} does not exist; pass the tool's export file.")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LabelImportError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}; a cut-off file?); "
            "nothing was imported."
        ) from None
    first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    if "annotations" in first or "data" in first:
        return data, "label-studio"
    if "fields" in first or "responses" in first:
        return data, "argilla"
    return data, None


def import_answers_file(queue: LabelQueue, path: Path, fmt: str | None = None) -> ImportSummary:
    """Read a Label Studio / Argilla export and store its answers (all or nothing)."""
    data, seen = _load(path)
    fmt = fmt or seen
    if fmt is None:
        raise LabelImportError(
            f"{path} looks like neither a Label Studio JSON export nor Argilla records (or is "
            "empty); pass --format label-studio or --format argilla."
        )
    if fmt == "label-studio":
        return queue.import_answers(label_studio.read_export(data), "label-studio")
    return queue.import_answers(argilla.read_records(data), "argilla")
