"""Calibration of the implicit reward: does its Bradley-Terry probability match the oracle?

Certainty ranks pairs by how sure the policy's implicit reward is. If the model says 0.97 for
pairs the oracle agrees with 75% of the time, "certain" mostly means "already agrees" and the
strategy buys little (docs/RESULTS.md). This table shows it per strategy, pooled over seeds and
rounds: acquired A/B pairs binned by the model's confidence in its own preferred completion,
max(p, 1 - p), against how often the oracle chose that completion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apl.reports.collect import RunRecord

CONFIDENCE_EDGES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class CalibrationBin:
    """Acquired pairs whose model confidence lies in [low, high) (the last bin includes 1)."""

    strategy: str
    low: float
    high: float
    pairs: int
    predicted: float  # mean confidence the model gave its preferred completion
    observed: float  # share of those pairs where the oracle chose it too


def calibration(groups: dict[str, list[RunRecord]]) -> list[CalibrationBin]:
    """Bins per strategy; cold-start pairs (exactly 0.5: no preference) are left out."""
    out = []
    for strategy, runs in groups.items():
        probs = np.array([a.oracle_prob for r in runs for a in r.acquired], dtype=float)
        probs = probs[probs != 0.5]
        confidence = np.maximum(probs, 1.0 - probs)
        agreed = probs > 0.5
        for i, (low, high) in enumerate(zip(CONFIDENCE_EDGES, CONFIDENCE_EDGES[1:], strict=False)):
            last = i == len(CONFIDENCE_EDGES) - 2
            held = (confidence >= low) & ((confidence <= high) if last else (confidence < high))
            if held.any():
                out.append(
                    CalibrationBin(
                        strategy,
                        low,
                        high,
                        int(held.sum()),
                        float(confidence[held].mean()),
                        float(agreed[held].mean()),
                    )
                )
    return out


def calibration_markdown(bins: list[CalibrationBin]) -> str:
    """One row per strategy and confidence bin."""
    lines = [
        "| strategy | model confidence | pairs | predicted | oracle agreed |",
        "|---|---|---:|---:|---:|",
    ]
    for b in bins:
        lines.append(
            f"| {b.strategy} | {b.low:g}-{b.high:g} | {b.pairs} | {b.predicted:.2f} | "
            f"{b.observed:.2f} |"
        )
    return "\n".join(lines) + "\n"
