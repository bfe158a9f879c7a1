"""The ledger's progress tables: per-round metrics, per-epoch history, spend and status."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apl.store.fs import guarded
from apl.store.journal_schema import CALL_TOTALS
from apl.store.ledger_schema import PHASES, transaction
from apl.store.spend_journal import JournalTotals

_guarded = guarded("use the ledger")


@dataclass(frozen=True)
class Spend:
    """What the oracle cost so far, split into labelling and evaluation."""

    label_usd: float
    eval_usd: float
    oracle_calls: int  # judgements not answered from the judgement cache (label + eval)
    cache_hits: int  # judgements the cache answered, at no cost
    # From the write-ahead call journal (paid judges only), over every process of the run:
    counted_usd: float = 0.0  # what oracle.budget_usd is checked against: every request, a
    # failed one at what it may have cost, an unsettled one at its worst case
    requests: int = 0  # HTTP requests, retries included: what oracle.max_calls is checked against
    unsettled: int = 0  # requests in flight, or lost in flight when a process died

    @property
    def total_usd(self) -> float:
        """Label plus evaluation spend."""
        return self.label_usd + self.eval_usd


@dataclass(frozen=True)
class RunStatus:
    """Progress summary for `apl status`."""

    num_rounds: int
    rounds_done: int  # rounds whose phase reached `trained`
    round: int | None  # the latest round started, if any
    phase: str | None  # its phase
    labels: int  # paid A/B verdicts: the labelled set
    verdicts: int  # every paid label verdict, ties and invalid included
    spend: Spend
    win_rate: float | None  # latest `eval/win_rate`
    win_rate_stderr: float | None
    win_rate_round: int | None
    budget_usd: float | None = None  # the run's oracle.budget_usd / max_calls (None: no limit)
    max_calls: int | None = None
    sweep: JournalTotals | None = None  # the sweep's shared spend and limits, if it has one
    pseudo_labels: int = 0  # the policy's own preferences it also trained on (never paid)


class ProgressRecords:
    """Metrics and summaries; `Ledger` extends it (needs `path` and an open `_conn`)."""

    path: Path
    _conn: sqlite3.Connection

    @_guarded
    def log_metrics(self, round: int, metrics: Mapping[str, float | None]) -> None:
        """Store `<stage>/<quantity>` metrics for a round in one transaction (a key is replaced)."""
        with transaction(self._conn):
            self._conn.executemany(
                "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)",
                [(round, k, None if v is None else float(v)) for k, v in metrics.items()],
            )

    @_guarded
    def metrics(self) -> dict[int, dict[str, float | None]]:
        """Every round's metrics: {round: {key: value}}, rounds ascending."""
        out: dict[int, dict[str, float | None]] = {}
        for r, k, v in self._conn.execute(
            "SELECT round, key, value FROM metrics ORDER BY round, key"
        ):
            out.setdefault(r, {})[k] = v
        return out

    @_guarded
    def log_history(self, round: int, history: Sequence[Mapping[str, float | None]]) -> None:
        """Replace a round's per-epoch training history (one dict per epoch) atomically."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM history WHERE round = ?", (round,))
            self._conn.executemany(
                "INSERT INTO history VALUES (?, ?, ?, ?)",
                [
                    (round, epoch, k, None if v is None else float(v))
                    for epoch, row in enumerate(history)
                    for k, v in row.items()
                ],
            )

    @_guarded
    def history(self, round: int) -> list[dict[str, float | None]]:
        """A round's per-epoch history, epoch 0 first."""
        out: dict[int, dict[str, float | None]] = {}
        rows = self._conn.execute(
            "SELECT epoch, key, value FROM history WHERE round = ? ORDER BY epoch, key", (round,)
        )
        for epoch, k, v in rows:
            out.setdefault(epoch, {})[k] = v
        return [out[e] for e in sorted(out)]

    @_guarded
    def spend(self) -> Spend:
        """Oracle spend and call counts over labelling and evaluation."""
        sums = [
            self._conn.execute(
                f"SELECT COALESCE(SUM(cost_usd), 0.0), COALESCE(SUM(from_cache = 0), 0), "
                f"COALESCE(SUM(from_cache = 1), 0) FROM {table}"
            ).fetchone()
            # pseudo-labels are the policy's own preferences: no oracle call, no spend
            for table in ("verdicts WHERE source = 'oracle'", "eval_verdicts")
        ]
        counted, requests, unsettled = self._conn.execute(CALL_TOTALS).fetchone()
        return Spend(
            sums[0][0],
            sums[1][0],
            sums[0][1] + sums[1][1],
            sums[0][2] + sums[1][2],
            counted,
            requests,
            unsettled,
        )

    @_guarded
    def status(self, num_rounds: int) -> RunStatus:
        """Rounds done of `num_rounds`, labels held, spend and the latest win-rate."""
        rounds = dict(
            self._conn.execute("SELECT round, phase FROM rounds ORDER BY round").fetchall()
        )
        latest = max(rounds) if rounds else None
        done = sum(PHASES.index(p) >= PHASES.index("trained") for p in rounds.values())
        counts = dict(
            self._conn.execute(
                "SELECT verdict IN ('A', 'B'), COUNT(*) FROM verdicts WHERE source = 'oracle' "
                "GROUP BY 1"
            ).fetchall()
        )
        pseudo = self._conn.execute(
            "SELECT COUNT(*) FROM verdicts WHERE source = 'pseudo' AND verdict IN ('A', 'B')"
        ).fetchone()[0]
        win = self._conn.execute(
            "SELECT round, value FROM metrics WHERE key = 'eval/win_rate' "
            "ORDER BY round DESC LIMIT 1"
        ).fetchone()
        stderr = None
        if win is not None:
            row = self._conn.execute(
                "SELECT value FROM metrics WHERE round = ? AND key = 'eval/win_rate_stderr'",
                (win[0],),
            ).fetchone()
            stderr = row[0] if row else None
        return RunStatus(
            num_rounds=num_rounds,
            rounds_done=done,
            round=latest,
            phase=rounds.get(latest) if latest is not None else None,
            labels=counts.get(1, 0),
            verdicts=counts.get(1, 0) + counts.get(0, 0),
            pseudo_labels=pseudo,
            spend=self.spend(),
            win_rate=win[1] if win else None,
            win_rate_stderr=stderr,
            win_rate_round=win[0] if win else None,
        )
