"""Identify a model's weights without naming the machine they sit on."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CONTENT_HASH_LIMIT = 4 * 2**30  # bytes; above it a local model is identified by name/size/mtime


def weights_fingerprint(directory: Path) -> str:
    """16 hex digits identifying a local model: config and weight files, by content when small."""
    files = [directory / "config.json"] + sorted(
        f for pattern in ("*.safetensors", "*.bin") for f in directory.glob(pattern)
    )
    files = [f for f in files if f.is_file()]
    by_content = sum(f.stat().st_size for f in files) <= _CONTENT_HASH_LIMIT
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        if by_content:
            with f.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(f"{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def hub_fingerprint(name: str) -> str:
    """`name@commit` for a hub model in the local cache, else `name`."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json")
    if isinstance(found, str) and "/snapshots/" in found:
        return f"{name}@{found.split('/snapshots/')[1].split('/')[0]}"
    return name


def is_local_path(name_or_path: str) -> bool:
    """True for a directory here or anything written as a path (`/`, `~`, `./`, `../`)."""
    return name_or_path.startswith(("/", "~", "./", "../")) or Path(name_or_path).exists()


def model_fingerprint(name_or_path: str) -> str:
    """`local:<16 hex>` for a local directory (by content), else the hub name (`@commit`)."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return f"local:{weights_fingerprint(local)}"
    return hub_fingerprint(name_or_path)
