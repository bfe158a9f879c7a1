"""Each strategy against random, paired by seed: the report's default comparison.

Runs with the same seed share their evaluation prompts, the baseline's completions, the
evaluation sampling stream, the DPO data order and (for strategies that are random at cold
start) their whole first round, so a per-seed difference removes what the two runs have in
common. For each strategy, size and metric: the mean of (strategy - random) over the seeds both
have, its standard error (std with ddof=1 / sqrt(pairs)), z, and the minimum detectable
difference (two standard errors). Label efficiency gets a bootstrap interval: seeds are
resampled with replacement (pairs kept together) and the labels random needs to match the
strategy's mean are recomputed on each resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from apl.reports.collect import RunRecord
from apl.reports.tables import Point, labels_to_reach

METRICS = {
    "eval/win_rate": "win-rate",
    "eval/expected_win_rate": "expected win-rate",
}


@dataclass(frozen=True)
class PairedDiff:
    """Strategy minus its random reference at one size, over the seeds both ran."""

    strategy: str
    metric: str
    labels: int
    seeds: tuple[int, ...]
    strategy_mean: float
    random_mean: float
    mean: float  # mean paired difference
    stderr: float  # std (ddof=1) of the differences / sqrt(pairs); NaN for one pair

    @property
    def z(self) -> float:
        """mean / stderr (NaN when undefined)."""
        return self.mean / self.stderr if self.stderr and not math.isnan(self.stderr) else math.nan


def _by_seed(runs: list[RunRecord], metric: str) -> dict[int, dict[int, float]]:
    """{seed: {size: value}}; runs that repeat a seed (one group: same config) are averaged."""
    values: dict[int, dict[int, list[float]]] = {}
    for run in runs:
        for size, value in run.metric_by_size(metric).items():
            values.setdefault(run.seed, {}).setdefault(size, []).append(value)
    return {s: {n: float(np.mean(v)) for n, v in by.items()} for s, by in values.items()}


def paired_differences(
    groups: dict[str, list[RunRecord]], references: dict[str, str], metric: str
) -> list[PairedDiff]:
    """Every (strategy, size) with at least one seed shared with its random reference."""
    out = []
    for strategy, runs in groups.items():
        reference = references.get(strategy)
        if reference is None or reference == strategy:
            continue
        mine, theirs = _by_seed(runs, metric), _by_seed(groups[reference], metric)
        sizes = sorted({n for values in mine.values() for n in values})
        for size in sizes:
            seeds = tuple(s for s in sorted(mine) if size in mine[s] and size in theirs.get(s, {}))
            if not seeds:
                continue
            a = np.array([mine[s][size] for s in seeds])
            b = np.array([theirs[s][size] for s in seeds])
            d = a - b
            se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
            out.append(
                PairedDiff(
                    strategy, metric, size, seeds, float(a.mean()), float(b.mean()),
                    float(d.mean()), se,
                )
            )  # fmt: skip
    return out


def paired_markdown(rows: list[PairedDiff]) -> str:
    """One row per (strategy, size): means, paired difference ± SE, z and 2 SE."""
    lines = [
        "| strategy | labels | seeds | its mean | random mean | difference ± SE | z | 2 SE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        se = "-" if math.isnan(r.stderr) else f"{r.stderr:.3f}"
        z = "-" if math.isnan(r.z) else f"{r.z:+.1f}"
        mdd = "-" if math.isnan(r.stderr) else f"{2 * r.stderr:.3f}"
        lines.append(
            f"| {r.strategy} | {r.labels} | {len(r.seeds)} | {r.strategy_mean:.3f} | "
            f"{r.random_mean:.3f} | {r.mean:+.3f} ± {se} | {z} | {mdd} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EfficiencyInterval:
    """Labels random needs to match a strategy's mean, with a bootstrap percentile interval."""

    strategy: str
    labels: int
    random_labels: float  # on the full sample (inf: random never gets there)
    low: float
    high: float
    floor: int  # random's first size: a value at or below it is a bound, not an estimate
    ceiling: int  # random's last size: above it random never got there

    def text(self, value: float) -> str:
        """`312`, `<= 64` or `> 256`."""
        if value <= self.floor:
            return f"<= {self.floor}"
        if math.isinf(value):
            return f"> {self.ceiling}"
        return f"{value:.0f}"

    def ratio_text(self, value: float) -> str:
        """Labels random needs over the strategy's own, with the same bounds."""
        if math.isinf(value):
            return f"> {self.ceiling / self.labels:.2f}x"
        mark = "<= " if value <= self.floor else ""
        return f"{mark}{value / self.labels:.2f}x"


def _labels_needed(curve: list[Point], target: float) -> float:
    value, bound = labels_to_reach(curve, target)
    return math.inf if bound == ">" else value


def efficiency_intervals(
    groups: dict[str, list[RunRecord]],
    references: dict[str, str],
    metric: str = "eval/win_rate",
    resamples: int = 2000,
    seed: int = 0,
) -> list[EfficiencyInterval]:
    """Labels random needs per (strategy, size), with a 95% paired-bootstrap interval."""
    rng = np.random.default_rng(seed)
    out = []
    for strategy, runs in groups.items():
        reference = references.get(strategy)
        if reference is None or reference == strategy:
            continue
        mine, theirs = _by_seed(runs, metric), _by_seed(groups[reference], metric)
        sizes = sorted({n for v in theirs.values() for n in v})
        seeds = [s for s in sorted(mine) if s in theirs and set(sizes) <= set(theirs[s])]
        if len(seeds) < 2 or not sizes:
            continue
        random = np.array([[theirs[s][n] for n in sizes] for s in seeds])
        for size in sorted({n for s in seeds for n in mine[s]}):
            if not all(size in mine[s] for s in seeds):
                continue
            own = np.array([mine[s][size] for s in seeds])

            def needed(idx: np.ndarray) -> float:
                curve = [
                    Point(reference, n, float(random[idx, j].mean()), math.nan, len(idx), ())
                    for j, n in enumerate(sizes)
                ]
                return _labels_needed(curve, float(own[idx].mean()))

            full = needed(np.arange(len(seeds)))
            draws = [needed(rng.integers(0, len(seeds), len(seeds))) for _ in range(resamples)]
            low, high = np.percentile(draws, [2.5, 97.5], method="inverted_cdf")
            out.append(EfficiencyInterval(strategy, size, full, low, high, sizes[0], sizes[-1]))
    return out


def efficiency_interval_markdown(rows: list[EfficiencyInterval]) -> str:
    """Strategy, size, labels random needs [95% interval], and the same as a ratio."""
    lines = [
        "| strategy | labels | random needs | 95% interval | saving | 95% interval |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.strategy} | {r.labels} | {r.text(r.random_labels)} | "
            f"{r.text(r.low)} to {r.text(r.high)} | {r.ratio_text(r.random_labels)} | "
            f"{r.ratio_text(r.low)} to {r.ratio_text(r.high)} |"
        )
    return "\n".join(lines) + "\n"
