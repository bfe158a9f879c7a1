"""Send each finished round's ledger metrics to the run's trackers (`tracking.report_to`).

A round is sent once it is `evaluated`, with everything the ledger holds for it (TRL's training
names, `label/*`, `eval/*`, `time/*`, any `judge/*`), the cumulative spend up to it
(`spend/*`), and both step axes as metrics: `loop/round` (also the tracker's step) and
`loop/labels` (the labelled-set size).
"""

from __future__ import annotations

import logging
from pathlib import Path

from apl.store.ledger import Ledger
from apl.store.run_dir import RunDir
from apl.tracking import STEP_LABELS, RunTrackers, flatten_params, resolve_report_to

logger = logging.getLogger(__name__)

TRACKERS_DIR = "trackers"


def spend_up_to(ledger: Ledger, round: int) -> dict[str, float]:
    """Oracle spend and calls for labels and evaluation from round 1 through `round`."""
    label_usd = eval_usd = 0.0
    calls = hits = 0
    for r in range(1, round + 1):
        for kind, judgements in (
            ("label", ledger.verdicts(r).values()),
            ("eval", ledger.eval_verdicts(r).values()),
        ):
            for j in judgements:
                cost = j.cost_usd or 0.0
                label_usd += cost if kind == "label" else 0.0
                eval_usd += cost if kind == "eval" else 0.0
                hits += int(bool(j.from_cache))
                calls += int(not j.from_cache)
    return {
        "spend/label_usd": label_usd,
        "spend/eval_usd": eval_usd,
        "spend/total_usd": label_usd + eval_usd,
        "spend/oracle_calls": float(calls),
        "spend/cache_hits": float(hits),
    }


def round_record(ledger: Ledger, round: int) -> dict[str, float]:
    """Every number the ledger holds for a finished round, plus spend and both step axes."""
    stored = ledger.metrics().get(round, {})
    record = {k: float(v) for k, v in stored.items() if v is not None}
    labels = record.get("label/total")
    if labels is None:
        labels = float(len(ledger.labelled(up_to_round=round)))
    record.update(spend_up_to(ledger, round))
    record["loop/round"] = float(round)
    record[STEP_LABELS] = labels
    return record


class LoopTracking:
    """The run's trackers, or nothing when `tracking.report_to` resolves to none."""

    def __init__(self, run_dir: RunDir, ledger: Ledger) -> None:
        config = run_dir.config
        self.ledger = ledger
        self.trackers: RunTrackers | None = None
        names = resolve_report_to(config.tracking.report_to)
        if not names:
            if config.tracking.report_to:
                logger.warning("tracking.report_to is 'all' but no tracker is installed.")
            return
        self.trackers = RunTrackers(
            names,
            Path(run_dir.path) / TRACKERS_DIR,
            project=config.tracking.project,
            run_name=config.tracking.run_name or Path(run_dir.path).resolve().name,
            params=flatten_params(config.model_dump(mode="json")),
        )
        logger.info("Reporting to %s", ", ".join(names))

    def send_finished(self) -> None:
        """Send every evaluated round that some tracker has not had yet, in round order."""
        if self.trackers is None:
            return
        done = [r for r, phase in self.ledger.rounds().items() if phase == "evaluated"]
        for round in self.trackers.unsent(done):
            self.trackers.send(round, round_record(self.ledger, round))

    def close(self) -> None:
        """Finish the trackers."""
        if self.trackers is not None:
            self.trackers.close()

    def __enter__(self) -> LoopTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
