"""Read an offline W&B run file (`run-<id>.wandb`) back: the history rows and the config.

wandb 0.31 has no Python reader for its run files (it moved into the Go `wandb-core`), so this
reads the documented format itself: a 7-byte `:W&B` header, then LevelDB log records (4-byte
checksum, 2-byte little-endian length, 1-byte type: full, first, middle, last) in 32 KiB
blocks, each payload one `wandb.proto` Record. The records are wandb's own protobufs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = 7
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B run file"
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # a block's tail too short for a record header is padding
            pos += left_in_block
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
        else:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
    return out


def read_wandb_run(path: Path) -> dict[str, Any]:
    """{'run_id', 'project', 'name', 'history': [{key: value, '_step': n}], 'config': {...}}."""
    from wandb.proto import wandb_internal_pb2 as pb

    run: dict[str, Any] = {"history": [], "config": {}, "metrics": []}
    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(
                run_id=record.run.run_id,
                project=record.run.project,
                name=record.run.display_name,
            )
            for item in record.run.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            row.setdefault("_step", record.history.step.num)
            run["history"].append(row)
        elif kind == "metric":
            run["metrics"].append(
                (record.metric.name or record.metric.glob_name, record.metric.step_metric)
            )
    return run
