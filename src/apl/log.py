"""One logging setup for the CLI: rich to a terminal, plain lines elsewhere; library code uses getLogger.

Progress bars and spinners are drawn only when stderr is a terminal (`live_display()`). In CI,
under `nohup` or into a log file, every progress report is an ordinary log line instead, so a
log holds no redraw frames.
"""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console

# Progress bars and log lines share one stderr console so bars are redrawn cleanly.
console = Console(stderr=True)

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def live_display() -> bool:
    """True when stderr is a terminal: only then are rich bars and spinners drawn.

    Both must agree: stderr is a TTY, and rich does not rule it out (TTY_COMPATIBLE=0).
    FORCE_COLOR alone does not count: it asks for colour in a log, not for redraws.
    """
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
    return tty and console.is_terminal


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        """The current sys.stderr."""
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """Route `apl` logs to stderr at INFO (DEBUG with `verbose`); quiet noisy libraries."""
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if live_display():
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    else:  # a pipe or a file: one plain, unwrapped line per record
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("apl").setLevel(level)
    _quiet_library_progress_bars()
    for noisy in ("httpx", "openai", "urllib3", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _quiet_library_progress_bars() -> None:
    # Our own progress reports suffice; the HF libraries' tqdm bars would interleave with them.
    # Environment variables, read when those libraries are imported, keep this import-free
    # (importing them takes seconds that a mistyped option should not wait for).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
