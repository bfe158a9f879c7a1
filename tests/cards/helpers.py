"""What a card must never contain: a path on the machine that wrote it."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def machine_paths(text: str) -> list[str]:
    """Absolute paths, home directories and temp directories found in `text`."""
    found = [p for p in (str(Path.home()), tempfile.gettempdir(), os.getcwd()) if p in text]
    found += re.findall(r"(?:^|[\s`'\"(=:\[])(/(?:[\w.-]+/)*[\w.-]+)", text)
    found += re.findall(r"~/[\w.-]+", text)
    return found
