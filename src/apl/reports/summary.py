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
    if spend.requests or status.budget_usd is not None or status.max_calls is not None:
        table.add_row(
            "against limits",
            _against(spend.counted_usd, spend.requests, status.budget_usd, status.max_calls)
            + _unsettled(spend.unsettled),
        )
    if status.sweep is not None:
        sweep = status.sweep
        table.add_row(
            "sweep (all runs)",
            _against(sweep.spent_usd, sweep.calls, sweep.budget_usd, sweep.max_calls)
            + _unsettled(sweep.in_flight),
        )
    if status.win_rate is None:
        table.add_row("latest win-rate", "-")
    else:
        table.add_row(
            "latest win-rate",
            f"{status.win_rate:.3f} ± {_fmt(status.win_rate_stderr)} (round {status.win_rate_round})",
        )
    return table


def _against(usd: float, calls: int, budget_usd: float | None, max_calls: int | None) -> str:
    """E.g. `$0.9712 of $1.0000 budget_usd; 812 requests (no max_calls)`."""
    budget = "(no budget_usd)" if budget_usd is None else f"of ${budget_usd:.4f} budget_usd"
    limit = "(no max_calls)" if max_calls is None else f"of {max_calls} max_calls"
    return f"${usd:.4f} {budget}; {calls} requests {limit}"


def _unsettled(count: int) -> str:
    return f" ({count} unsettled, counted at worst case)" if count else ""
