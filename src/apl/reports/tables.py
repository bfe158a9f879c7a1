"""Aggregate runs across seeds: Table 2 (mean ± SE), label efficiency against random, spend, CSV."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from apl.reports.collect import RunRecord

RANDOM = "random"


@dataclass(frozen=True)
class Point:
    """One strategy at one labelled-set size, over its seeds."""

    strategy: str
    labels: int
    mean: float
    stderr: float  # std (ddof=1) / sqrt(seeds); NaN for one seed
    seeds: int
    values: tuple[float, ...]


def mean_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n)); stderr NaN when n < 2."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    if arr.size < 2:
        return float(arr.mean()), math.nan
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def aggregate(groups: dict[str, list[RunRecord]]) -> dict[str, list[Point]]:
    """{strategy: points by labelled-set size ascending}, from each run's `eval/win_rate`."""
    out: dict[str, list[Point]] = {}
    for strategy, runs in groups.items():
        by_size: dict[int, list[float]] = {}
        for run in runs:
            for size, (rate, _) in run.win_rates().items():
                by_size.setdefault(size, []).append(rate)
        out[strategy] = [
            Point(strategy, size, *mean_stderr(vals), len(vals), tuple(vals))
            for size, vals in sorted(by_size.items())
        ]
    return out


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table2_markdown(points: dict[str, list[Point]]) -> str:
    """Rows: labelled-set sizes; columns: strategies; `mean ± SE (seeds)`, best mean per row bold."""
    strategies = list(points)
    sizes = sorted({p.labels for pts in points.values() for p in pts})
    lookup = {(p.strategy, p.labels): p for pts in points.values() for p in pts}
    lines = ["| labels | " + " | ".join(strategies) + " |", "|---:|" + "---:|" * len(strategies)]
    for size in sizes:
        row = [lookup.get((s, size)) for s in strategies]
        best = max((p.mean for p in row if p is not None and not math.isnan(p.mean)), default=None)
        cells = []
        for p in row:
            if p is None:
                cells.append("-")
                continue
            text = f"{_fmt(p.mean)} ± {_fmt(p.stderr)} ({p.seeds})"
            cells.append(f"**{text}**" if best is not None and p.mean == best else text)
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Efficiency:
    """How many labels random needs to match `strategy`'s mean win-rate at `labels`."""

    strategy: str
    labels: int
    win_rate: float
    random_labels: float  # interpolated on random's mean curve (a bound when `bound` != "=")
    bound: Literal["=", "<=", ">"]  # "<=": at or below random's first size; ">": never reached

    @property
    def ratio(self) -> float:
        """random_labels / labels: > 1 means the strategy saves labels."""
        return self.random_labels / self.labels

    def text(self) -> str:
        """`312 (1.22x)`, `<= 64 (<= 0.50x)` or `> 256 (> 2.00x)`."""
        mark = "" if self.bound == "=" else f"{self.bound} "
        return f"{mark}{self.random_labels:.0f} ({mark}{self.ratio:.2f}x)"


def labels_to_reach(curve: list[Point], target: float) -> tuple[float, Literal["=", "<=", ">"]]:
    """Labels at which `curve` first reaches `target`, linearly interpolated between its points.

    Below the curve's first point there is nothing to interpolate from, so the answer is
    (first size, "<="); if the curve never reaches the target it is (last size, ">").
    """
    if not curve:
        raise ValueError("labels_to_reach needs at least one point")
    for i, point in enumerate(curve):
        if point.mean >= target:
            if i == 0:
                return float(point.labels), "<="
            prev = curve[i - 1]  # prev.mean < target <= point.mean, so the slope is positive
            x = prev.labels + (target - prev.mean) * (point.labels - prev.labels) / (
                point.mean - prev.mean
            )
            return float(x), "="
    return float(curve[-1].labels), ">"


def label_efficiency(
    points: dict[str, list[Point]], references: dict[str, str]
) -> list[Efficiency]:
    """For each strategy with a random reference (`references[strategy]`) and size: the labels
    random needs to match it, and their ratio to the strategy's own labels."""
    out = []
    for strategy, pts in points.items():
        reference = references.get(strategy)
        if reference is None or reference == strategy or not points.get(reference):
            continue
        curve = [p for p in points[reference] if not math.isnan(p.mean)]
        for p in pts:
            if not math.isnan(p.mean) and curve:
                labels, bound = labels_to_reach(curve, p.mean)
                out.append(Efficiency(strategy, p.labels, p.mean, labels, bound))
    return out


def random_references(groups: dict[str, list[RunRecord]]) -> dict[str, str]:
    """Each strategy's random peer: the `random` group with the same non-acquisition settings."""

    def setting(runs: list[RunRecord]) -> tuple:
        values = runs[0].group_values
        return tuple(
            sorted((k, repr(v)) for k, v in values.items() if not k.startswith("acquisition."))
        )

    randoms = {setting(r): s for s, r in groups.items() if r[0].config.acquisition.name == RANDOM}
    return {s: randoms[setting(r)] for s, r in groups.items() if setting(r) in randoms}


def efficiency_markdown(rows: list[Efficiency]) -> str:
    """Strategies as rows, sizes as columns: `random labels (ratio)`."""
    strategies = list(dict.fromkeys(r.strategy for r in rows))
    sizes = sorted({r.labels for r in rows})
    lookup = {(r.strategy, r.labels): r for r in rows}
    lines = [
        "| strategy | " + " | ".join(str(s) for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for s in strategies:
        cells = [lookup[(s, n)].text() if (s, n) in lookup else "-" for n in sizes]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def spend_markdown(groups: dict[str, list[RunRecord]]) -> str:
    """Oracle spend per strategy, summed over its runs (USD, calls, cache hits, labels).

    Pseudo-labels (the policy's own preferences, never paid) get a column of their own when any
    run has them; they are never in `labels`, calls or USD.
    """
    pseudo = any(r.pseudo_labels for runs in groups.values() for r in runs)
    extra = " pseudo-labels (not paid) |" if pseudo else ""
    lines = [
        "| strategy | runs | label USD | eval USD | total USD | oracle calls | cache hits | labels |"
        + extra,
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if pseudo else ""),
    ]
    for strategy, runs in groups.items():
        label = sum(r.spend.label_usd for r in runs)
        ev = sum(r.spend.eval_usd for r in runs)
        calls = sum(r.spend.oracle_calls for r in runs)
        hits = sum(r.spend.cache_hits for r in runs)
        labels = sum(r.labels for r in runs)
        cells = f" {sum(r.pseudo_labels for r in runs)} |" if pseudo else ""
        lines.append(
            f"| {strategy} | {len(runs)} | {label:.4f} | {ev:.4f} | {label + ev:.4f} | {calls} | "
            f"{hits} | {labels} |" + cells
        )
    return "\n".join(lines) + "\n"


def write_csvs(
    groups: dict[str, list[RunRecord]], points: dict[str, list[Point]], out_dir: Path
) -> list[Path]:
    """`aggregated.csv` (strategy x planned size: mean, stderr, seeds) and `runs.csv` (every run x
    round, with the labels it really held)."""
    aggregated, per_run = out_dir / "aggregated.csv", out_dir / "runs.csv"
    with aggregated.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["strategy", "labels", "mean_win_rate", "stderr", "seeds"])
        for pts in points.values():
            for p in pts:
                writer.writerow([p.strategy, p.labels, p.mean, p.stderr, p.seeds])
    with per_run.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["strategy", "seed", "run_dir", "labels", "labels_held", "win_rate", "win_rate_stderr"]
        )
        for strategy, runs in groups.items():
            for run in runs:
                held = run.labels_held()
                for size, (rate, se) in run.win_rates().items():
                    writer.writerow([strategy, run.seed, str(run.path), size, held[size], rate, se])
    return [aggregated, per_run]
