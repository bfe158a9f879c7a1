"""Where apl keeps its caches: one neutral place that every stage may import."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where apl keeps caches (fitted judge, label cache, cut prompts): `$APL_CACHE_DIR` or
    `~/.cache/apl`."""
    return Path(os.environ.get("APL_CACHE_DIR") or Path.home() / ".cache" / "apl")
