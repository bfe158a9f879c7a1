"""Collect finished (or partial) runs for a report: metrics, acquired pairs' BT probabilities, spend.

`discover_runs` accepts run directories and sweep roots; `load_runs` reads each ledger once;
`group_runs` names each run's strategy by `acquisition.name` plus any other config field that
differs between the runs (seed and output_dir excepted), so seeds of one strategy pool together.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apl.config import APLConfig
from apl.errors import RunStoreError
from apl.store.label_people import AgreementSummary, read_agreement
from apl.store.ledger import Spend
from apl.store.run_dir import CONFIG_FILE, FINAL_MODEL_DIR, load_run_dir
from apl.types import Verdict

logger = logging.getLogger(__name__)

# Never part of a strategy's name: seeds are what a strategy is averaged over.
UNGROUPED_KEYS = ("seed", "output_dir")
PAPER_ORDER = ("random", "entropy", "certainty", "hybrid")


@dataclass(frozen=True)
class AcquiredPair:
    """A labelled pair as Figure 3 sees it: round, the model's P(a > b), and the oracle's pick."""

    round: int
    bt_prob: float  # P(a > b) under the policy that acquired the pair
    verdict: Verdict  # A or B

    @property
    def oracle_prob(self) -> float:
        """The probability the model gave the oracle's choice (> 0.5: it agreed)."""
        return self.bt_prob if self.verdict is Verdict.A else 1.0 - self.bt_prob


@dataclass
class RunRecord:
    """What a report needs from one run."""

    path: Path
    config: APLConfig
    metrics: dict[int, dict[str, float | None]]
    acquired: list[AcquiredPair]
    spend: Spend
    labels: int  # paid usable (A/B) labels held
    complete: bool
    strategy: str = ""  # set by group_runs
    unannotated: int = 0  # labelled pairs without a bt_prob (acquisition did not annotate)
    group_values: dict[str, Any] = field(default_factory=dict)
    annotators: AgreementSummary | None = None  # people who labelled (oracle `web`), if any
    pseudo_labels: int = 0  # the policy's own preferences it trained on (never paid)

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self.config.seed

    def metric_by_size(self, key: str) -> dict[int, float]:
        """{PLANNED labelled-set size (round x M): metric `key`} for rounds with a finite value.

        Keyed by plan, not by labels held: a round that ended short (the judge answered too few
        pairs; see loop/top_up.py) still belongs to its column, so one short seed cannot fall
        out of a table. `labels_held` says how many labels each evaluated round really had.
        """
        M = self.config.loop.query_size
        out = {}
        for round, row in sorted(self.metrics.items()):
            value = row.get(key)
            if round < 1 or value is None or math.isnan(value):  # NaN: nothing judged
                continue
            out[round * M] = value
        return out

    def labels_held(self) -> dict[int, int | None]:
        """{planned size: paid labels held then (`label/total`)} per round with a win-rate."""
        M = self.config.loop.query_size
        held = {}
        for size in self.metric_by_size("eval/win_rate"):
            total = self.metrics[size // M].get("label/total")
            held[size] = None if total is None else int(total)
        return held

    def win_rates(self) -> dict[int, tuple[float, float | None]]:
        """{labelled-set size: (win-rate, its stderr)} for every evaluated round."""
        rates = self.metric_by_size("eval/win_rate")
        errors = self.metric_by_size("eval/win_rate_stderr")
        return {size: (rate, errors.get(size)) for size, rate in rates.items()}


def discover_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs among `paths`: each path is a run dir (holds config.yaml) or a folder of them."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / CONFIG_FILE).is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise RunStoreError(f"{path} does not exist; pass run directories or sweep roots.")
        below = sorted(p.parent for p in path.rglob(CONFIG_FILE) if not _inside_run(p.parent, path))
        if not below:
            raise RunStoreError(
                f"{path} holds no apl runs (no {CONFIG_FILE} in it or below); pass the output_dir "
                "of `apl run` or the output_dir of a sweep."
            )
        found.extend(below)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _inside_run(directory: Path, top: Path) -> bool:
    # A config.yaml inside a run dir's own subfolders (final_model/, checkpoints/) is not a run.
    return any(
        (parent / CONFIG_FILE).is_file()
        for parent in directory.parents
        if parent != top and top in parent.parents
    )


def load_run(path: Path) -> RunRecord:
    """Read one run's config, metrics, acquired pairs (with verdicts) and spend."""
    directory = load_run_dir(path)
    acquired, unannotated = [], 0
    with directory.open_ledger() as ledger:
        metrics = ledger.metrics()
        spend = ledger.spend()
        rounds = ledger.rounds()
        labels, pseudo = ledger.label_counts()
        for round in rounds:
            extras = {c.id: c.pair.extras for c in ledger.candidates(round)}
            for candidate_id, judgement in ledger.verdicts(round).items():
                verdict = Verdict(judgement.verdict)
                if verdict not in (Verdict.A, Verdict.B):
                    continue  # ties and invalid verdicts neither agree nor disagree
                if "pseudo_label" in extras[candidate_id]:
                    continue  # the policy's own preference agrees with itself: not evidence
                bt = extras[candidate_id].get("bt_prob")
                if bt is None:
                    unannotated += 1
                else:
                    acquired.append(AcquiredPair(round, float(bt), verdict))
    num_rounds = directory.config.loop.num_rounds
    complete = (path / FINAL_MODEL_DIR).is_dir() and all(
        rounds.get(r) == "evaluated" for r in range(1, num_rounds + 1)
    )
    return RunRecord(
        path,
        directory.config,
        metrics,
        acquired,
        spend,
        labels,
        complete,
        unannotated=unannotated,
        annotators=read_agreement(directory.ledger_path),
        pseudo_labels=pseudo,
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def group_runs(records: list[RunRecord]) -> tuple[dict[str, list[RunRecord]], list[str]]:
    """Name each run's strategy; return ({strategy: runs}, the config keys grouped by).

    The keys are `acquisition.name` plus every other config key whose value differs between
    runs, except `seed` and `output_dir`; a run's label names those it sets (not None).
    """
    flat = [_flatten(r.config.model_dump(mode="json")) for r in records]
    keys = sorted({k for f in flat for k in f})
    differing = [
        k
        for k in keys
        if k not in UNGROUPED_KEYS
        and k != "acquisition.name"
        and len({repr(f.get(k, "<absent>")) for f in flat}) > 1
    ]
    by = ["acquisition.name", *differing]
    groups: dict[str, list[RunRecord]] = {}
    for record, f in zip(records, flat, strict=True):
        record.group_values = {k: f.get(k) for k in differing}
        # Unset options (absent or None: the function's default) stay out of the label, so a
        # plain `certainty` next to `certainty (acquisition.direction=least)` reads as such.
        extra = ", ".join(f"{k}={f[k]}" for k in differing if f.get(k) is not None)
        record.strategy = (
            f"{f['acquisition.name']} ({extra})" if extra else str(f["acquisition.name"])
        )
        groups.setdefault(record.strategy, []).append(record)
    # The paper's order (random baseline first), then other strategies as their runs were given.
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    order = sorted(groups, key=lambda s: rank.get(groups[s][0].config.acquisition.name, len(rank)))
    return {s: groups[s] for s in order}, by


def load_runs(paths: Iterable[str | Path]) -> tuple[dict[str, list[RunRecord]], list[str]]:
    """Discover, load and group runs: ({strategy: runs sorted by seed}, keys grouped by)."""
    records = [load_run(p) for p in discover_runs(paths)]
    for record in records:
        if not record.complete:
            logger.warning("Run %s is incomplete; its evaluated rounds are included.", record.path)
        short = {n: h for n, h in record.labels_held().items() if h is not None and h < n}
        if short:
            logger.warning(
                "Run %s held fewer labels than planned (%s); it is reported at its planned sizes.",
                record.path,
                ", ".join(f"{h} at {n}" for n, h in short.items()),
            )
    groups, by = group_runs(records)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.seed, str(r.path)))
        seeds = [r.seed for r in runs]
        if len(set(seeds)) < len(seeds):
            logger.warning(
                "Strategy %s has repeated seeds %s: pooled tables count each run, and comparisons "
                "paired by seed use the mean of a seed's runs.",
                runs[0].strategy,
                seeds,
            )
    return groups, by
