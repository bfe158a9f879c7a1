"""Who labelled a `web` run: per-annotator counts, time per label and agreement (status, report)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from apl.store.label_people import AgreementSummary
from apl.store.label_status import QueueProgress

COLUMNS = ("annotator", "answers", "A/B", "ties", "skips", "median s/label", "agreement (n)")


def _cells(summary: AgreementSummary) -> list[list[str]]:
    rows = []
    for s in summary.annotators:
        rows.append(
            [
                s.name,
                str(s.answers),
                str(s.a_or_b),
                str(s.ties),
                str(s.skips),
                "-" if s.median_seconds is None else f"{s.median_seconds:.1f}",
                "-" if s.agreement is None else f"{s.agreement:.2f} ({s.compared})",
            ]
        )
    return rows


def _overall(summary: AgreementSummary) -> str:
    if summary.agreement is None:
        return "no pair has two answers yet"
    return f"{summary.agreement:.2f} over {summary.compared_pairs} pairs with two or more answers"


def annotators_table(summary: AgreementSummary, progress: QueueProgress | None = None) -> Table:
    """`apl status`: one row per annotator, the overall agreement and the queue's state."""
    caption = f"pairwise agreement: {_overall(summary)}"
    if progress is not None and progress.round is not None:
        what = "evaluation" if progress.purpose == "eval" else "labels"
        caption += (
            f"; queue: round {progress.round} {what} {progress.answered}/{progress.queued} "
            f"answered, {progress.open_pairs} pairs waiting"
        )
    table = Table(title="annotators", caption=caption)
    table.add_column(COLUMNS[0], overflow="fold", min_width=12)
    for column in COLUMNS[1:]:
        table.add_column(column, justify="right")
    for row in _cells(summary):
        table.add_row(*row)
    return table


def annotators_markdown(runs: Iterable[tuple[str, AgreementSummary]]) -> str:
    """`apl report`: an annotator table per run that people labelled."""
    parts = []
    for name, summary in runs:
        lines = [f"**{name}**, pairwise agreement: {_overall(summary)}.", ""]
        lines += ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in _cells(summary)]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
