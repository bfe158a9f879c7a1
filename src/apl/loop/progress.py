"""A run's progress: rich bars on a terminal, one log line per phase and round elsewhere."""

from __future__ import annotations

import logging
import time

from apl.log import console, live_display

logger = logging.getLogger(__name__)


class RunProgress:
    """Shows which round and phase a run is in, and how many labels the round holds.

    On a terminal: one bar over rounds and one over the current round's labels. Otherwise
    (CI, `nohup`, a log file): a log line when a phase starts and when a round ends.
    """

    def __init__(self, num_rounds: int, query_size: int, live: bool | None = None) -> None:
        self.num_rounds, self.query_size = num_rounds, query_size
        self.live = live_display() if live is None else live
        self._start = time.perf_counter()
        self._progress = None
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self._rounds = self._progress.add_task("rounds", total=num_rounds)
            self._labels = self._progress.add_task("labels", total=query_size, visible=False)

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, round: int, name: str) -> None:
        """Show `round` as being in phase `name`."""
        if self._progress is None:
            logger.info("Round %d/%d: %s", round, self.num_rounds, name)
            return
        self._progress.update(self._rounds, description=f"round {round}: {name}")
        labelling = name == "labelling"
        self._progress.update(self._labels, visible=labelling, completed=0)

    def labels(self, held: int) -> None:
        """Usable labels held so far this round."""
        if self._progress is not None:
            self._progress.update(self._labels, completed=held)

    def advance(self, round: int) -> None:
        """Mark `round` finished."""
        if self._progress is None:
            elapsed = time.perf_counter() - self._start
            logger.info("Round %d/%d: done (%.0f s elapsed)", round, self.num_rounds, elapsed)
            return
        self._progress.update(self._rounds, completed=round, description=f"round {round}: done")
