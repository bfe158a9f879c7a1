"""The short per-round table printed at the end of `apl run` and by `apl status`."""

from __future__ import annotations

import math
from collections.abc import Mapping

from rich.table import Table

from apl.store.progress import RunStatus


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def rounds_table(metrics: Mapping[int, Mapping[str, float | None]], title: str = "") -> Table:
    """One row per round: labels, DPO loss and reward accuracy, win-rate ± stderr."""
    table = Table(title=title or None)
    for column in ("round", "labels", "train/loss", "rewards/accuracies", "win-rate", "± stderr"):
        table.add_column(column, justify="right")
    for round, row in sorted(metrics.items()):
        if round < 1:
            continue
        labels = row.get("label/total")
        table.add_row(
            str(round),
            "-" if labels is None else str(int(labels)),
            _fmt(row.get("train/loss")),
            _fmt(row.get("rewards/accuracies")),
            _fmt(row.get("eval/win_rate")),
            _fmt(row.get("eval/win_rate_stderr")),
        )
    return table


def status_table(status: RunStatus, run_dir: str) -> Table:
    """`apl status`: progress, labels held, spend and the latest win-rate."""
    table = Table(title=f"apl run {run_dir}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    phase = f"round {status.round}: {status.phase}" if status.round else "not started"
    table.add_row("rounds done", f"{status.rounds_done} / {status.num_rounds} ({phase})")
    table.add_row("labels held", f"{status.labels} usable of {status.verdicts} paid verdicts")
    if status.pseudo_labels:
        table.add_row(
            "pseudo-labels", f"{status.pseudo_labels} (the policy's own preference; not paid)"
        )
    spend = status.spend
    table.add_row(
        "oracle spend",
        f"${spend.total_usd:.4f} (labels ${spend.label_usd:.4f}, eval ${spend.eval_usd:.4f}); "
        f"{spend.oracle_calls} calls, {spend.cache_hits} cache hits",
    )
    if status.win_rate is None:
        table.add_row("latest win-rate", "-")
    else:
        table.add_row(
            "latest win-rate",
            f"{status.win_rate:.3f} ± {_fmt(status.win_rate_stderr)} (round {status.win_rate_round})",
        )
    return table
