"""A disk cache of cut prompt pools: the second run reads ~22k IMDB prompts in milliseconds.

Cutting a pool tokenises every text's opening (seconds per split), and it is the same work for
every run with the same tokenizer, task options and seed. A task hands `read_prompts` /
`write_prompts` a key naming everything that decides its prompts; the file is named by a hash
of the key and also holds the key, so a file is only ever read back for exactly that key. Files
are written to a temporary name and renamed into place (a reader never sees half a file); a
file that cannot be read is rebuilt, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from apl.paths import prompt_cache_dir
from apl.types import Prompt

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the file layout below changes


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """sha256 of a fast tokenizer's full serialisation (vocab, merges, normaliser, pre-tokeniser,
    added tokens); None for a tokenizer without a Rust backend, which is then never cached."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()


def file_fingerprint(*paths: Path) -> str:
    """sha256 over the bytes of `paths`, each length-prefixed."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            part = hashlib.file_digest(handle, "sha256").digest()
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def cache_path(key: dict[str, Any], directory: Path | None = None) -> Path:
    """The file for `key` under `directory` (default `apl.paths.prompt_cache_dir()`)."""
    name = hashlib.sha256(_canonical(key).encode("utf-8")).hexdigest()[:32]
    return (directory or prompt_cache_dir()) / f"{key.get('task', 'pool')}-{name}.json"


def read_prompts(path: Path, key: dict[str, Any]) -> tuple[list[Prompt], dict[str, Any]] | None:
    """The prompts and the extra facts stored for `key` at `path`; None if there is no such file
    (or it holds another key). An unreadable file logs a warning and reads as None."""
    try:
        data = json.loads(path.read_bytes())
        if data["format"] != FORMAT_VERSION or data["key"] != json.loads(_canonical(key)):
            return None
        columns = data["prompts"]  # one list per field: far fewer objects than one row each
        uids, texts = columns["uid"], columns["text"]
        if not all(isinstance(x, str) for x in (*uids, *texts)):
            raise ValueError("a prompt's uid or text is not a string")
        rows = zip(uids, texts, columns["reference"], columns["label"], strict=True)
        prompts = [Prompt(uid=u, text=t, reference=r, label=lab) for u, t, r, lab in rows]
        return prompts, dict(data["facts"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
        logger.warning("Cached prompts %s are unreadable (%s); cutting them again.", path, err)
        return None


def write_prompts(
    path: Path, key: dict[str, Any], prompts: list[Prompt], facts: dict[str, Any]
) -> None:
    """Store `prompts` (plain text only) and `facts` for `key` at `path`, atomically.

    A cache that cannot be written (read-only home, full disk) only logs a warning.
    """
    assert not any(p.messages for p in prompts), "conversations are not cached"
    data = {
        "format": FORMAT_VERSION,
        "key": json.loads(_canonical(key)),
        "facts": facts,
        "prompts": {
            "uid": [p.uid for p in prompts],
            "text": [p.text for p in prompts],
            "reference": [p.reference for p in prompts],
            "label": [p.label for p in prompts],
        },
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            # ASCII escapes: any str round-trips, a lone surrogate too, whatever the encoding.
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, ValueError) as err:  # read-only or full disk; a value JSON cannot hold
        logger.warning(
            "Could not cache prompts at %s (%s); they are cut again next time.", path, err
        )


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))
