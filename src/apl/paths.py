"""Where apl keeps its caches: one neutral place that every stage may import."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where apl keeps caches (fitted judge, label cache, cut prompts): `$APL_CACHE_DIR` or
    `~/.cache/apl`."""
    return Path(os.environ.get("APL_CACHE_DIR") or Path.home() / ".cache" / "apl")


def prompt_cache_dir() -> Path:
    """Where cut prompt pools are kept: `$APL_PROMPT_CACHE_DIR`, else `<cache dir>/prompts`.

    Its own variable so that runs with separate label caches (fresh `APL_CACHE_DIR`s) can still
    share cut prompts, which depend on nothing a label cache holds.
    """
    return Path(os.environ.get("APL_PROMPT_CACHE_DIR") or default_cache_dir() / "prompts")
