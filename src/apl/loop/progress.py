"""Rich progress for a run: one bar over rounds, one over the current round's labels."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from apl.log import console


class RunProgress:
    """Shows which round and phase a run is in, and how many labels the round holds."""

    def __init__(self, num_rounds: int, query_size: int) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.query_size = query_size
        self._rounds = self._progress.add_task("rounds", total=num_rounds)
        self._labels = self._progress.add_task("labels", total=query_size, visible=False)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, round: int, name: str) -> None:
        """Show `round` as being in phase `name`."""
        self._progress.update(self._rounds, description=f"round {round}: {name}")
        labelling = name == "labelling"
        self._progress.update(self._labels, visible=labelling, completed=0)

    def labels(self, held: int) -> None:
        """Usable labels held so far this round."""
        self._progress.update(self._labels, completed=held)

    def advance(self, round: int) -> None:
        """Mark `round` finished."""
        self._progress.update(self._rounds, completed=round, description=f"round {round}: done")
