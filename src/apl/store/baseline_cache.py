"""Baseline eval completions cached outside any single run, so a sweep generates them once.

Every strategy in a sweep with the same seed evaluates against the same initial-model
completions; they are keyed by everything that changes them (model identity, task, split,
seed, number of prompts, temperature, token limits, dtype/device) and written atomically as
one JSON file per key, so concurrent runs can share a directory safely (last rename wins,
and both wrote the same thing).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apl.config import APLConfig
from apl.store.fs import storage_errors, write_text_atomic
from apl.types import Completion

logger = logging.getLogger(__name__)

_FORMAT = 1


def baseline_identity(
    config: APLConfig, model_fingerprint: str, split: str = "test"
) -> dict[str, Any]:
    """What determines the initial model's eval completions for a run with this config.

    `model_fingerprint` identifies the weights (e.g. a hash of the weight files), since
    `model_name_or_path` alone does not when a local directory is rewritten.
    """
    # Only a non-empty `generation.stop` is named, so baselines cached before it existed still hit.
    stop = {"stop": config.generation.stop} if config.generation.stop else {}
    return {
        **stop,
        "model": config.model.model_name_or_path,
        "model_fingerprint": model_fingerprint,
        "dtype": config.model.dtype,
        "bf16": config.model.bf16,
        "device": config.model.device,
        "task": config.task.model_dump(mode="json"),
        "split": split,
        "seed": config.seed,
        "num_prompts": config.evaluation.num_prompts,
        "temperature": config.evaluation.temperature,
        "min_new_tokens": config.generation.min_new_tokens,
        "max_new_tokens": config.generation.max_new_tokens,
    }


def _key(identity: Mapping[str, Any]) -> str:
    blob = json.dumps({"format": _FORMAT, **identity}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class BaselineCache:
    """A directory of baseline completion sets, one JSON file per identity."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, identity: Mapping[str, Any]) -> Path:
        """The file that holds (or will hold) the set for `identity`."""
        return self.root / f"baseline-{_key(identity)}.json"

    def get(self, identity: Mapping[str, Any]) -> dict[str, Completion] | None:
        """The cached completions by prompt uid, or None on a miss (unreadable files are misses)."""
        path = self.path_for(identity)
        try:
            with storage_errors("read", path):
                data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("identity") != json.loads(json.dumps(dict(identity))):
                logger.warning("Baseline cache %s holds another identity; regenerating.", path)
                return None
            return {
                row["uid"]: Completion(row["text"], tuple(row["token_ids"]), row["logp"])
                for row in data["completions"]
            }
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("Baseline cache %s is unreadable; regenerating.", path)
            return None

    def put(self, identity: Mapping[str, Any], completions: Mapping[str, Completion]) -> Path:
        """Store a completion set for `identity` atomically; returns its path."""
        path = self.path_for(identity)
        with storage_errors("create the baseline cache", self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": _FORMAT,
            "identity": dict(identity),
            "completions": [
                {"uid": uid, "text": c.text, "token_ids": list(c.token_ids), "logp": c.logp}
                for uid, c in completions.items()
            ],
        }
        write_text_atomic(path, json.dumps(payload))
        return path
