"""One logging setup for the CLI: rich to stderr, library code only uses getLogger."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

# Progress bars and log lines share one stderr console so bars are redrawn cleanly.
console = Console(stderr=True)


def setup_logging(verbose: bool = False) -> None:
    """Route `apl` logs through rich at INFO (DEBUG with `verbose`); quiet noisy libraries."""
    level = logging.DEBUG if verbose else logging.INFO
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("apl").setLevel(level)
    _quiet_library_progress_bars()
    for noisy in ("httpx", "openai", "urllib3", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _quiet_library_progress_bars() -> None:
    # Our own rich bars show progress; the HF libraries' tqdm bars would interleave with them.
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
