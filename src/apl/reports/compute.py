"""Compute beside labels: what each strategy's acquisition and training cost, against random.

From the `compute/*` and `time/round_*` metrics the loop logs per round (apl.loop.compute): per
strategy, the mean
over its runs of the per-run totals, and the ratio of acquisition + training seconds to the
random reference's. A strategy that saves labels at many times the compute may not be worth it
(Oh et al., "Random is hard to beat", arXiv 2604.02766, found ~20x for negligible gains).
"""

from __future__ import annotations

import math

import numpy as np

from apl.reports.collect import RunRecord

COLUMNS = (  # (metric, column title)
    ("compute/sampled_tokens", "sampled tokens"),
    ("compute/scored_sequences", "scored sequences"),
    ("compute/feature_sequences", "feature sequences"),
    ("compute/trained_pairs", "trained pairs"),
    ("time/round_acquire", "acquire s"),
    ("time/round_train", "train s"),
)
SECONDS = ("time/round_acquire", "time/round_train")


def run_totals(run: RunRecord) -> dict[str, float]:
    """{column: total over the run's rounds} (0 for counters it never logged)."""
    out = {key: 0.0 for key, _ in COLUMNS}
    for round, row in run.metrics.items():
        if round < 1:
            continue
        for key, _ in COLUMNS:
            value = row.get(key)
            if value is not None and not math.isnan(value):
                out[key] += value
    return out


def compute_table(
    groups: dict[str, list[RunRecord]], references: dict[str, str]
) -> list[tuple[str, dict[str, float], float | None]]:
    """[(strategy, mean totals per run, seconds ratio to its random reference or None)]."""
    means = {
        s: {k: float(np.mean([run_totals(r)[k] for r in runs])) for k, _ in COLUMNS}
        for s, runs in groups.items()
        if runs
    }
    rows = []
    for strategy, totals in means.items():
        reference = references.get(strategy)
        ratio = None
        if reference in means:
            base = sum(means[reference][k] for k in SECONDS)
            if base > 0:
                ratio = sum(totals[k] for k in SECONDS) / base
        rows.append((strategy, totals, ratio))
    return rows


def compute_markdown(groups: dict[str, list[RunRecord]], references: dict[str, str]) -> str:
    """The compute table, or a note when no run logged compute metrics."""
    rows = compute_table(groups, references)
    if not any(any(v for v in totals.values()) for _, totals, _ in rows):
        return "No run logged compute metrics (runs made before apl recorded them).\n"
    lines = [
        "| strategy | " + " | ".join(label for _, label in COLUMNS) + " | seconds vs random |",
        "|---|" + "---:|" * (len(COLUMNS) + 1),
    ]
    for strategy, totals, ratio in rows:
        cells = [f"{totals[k]:.1f}" if k in SECONDS else f"{totals[k]:,.0f}" for k, _ in COLUMNS]
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {shown} |")
    return "\n".join(lines) + "\n"
