"""The paper's figures as PNGs: Figure 2 (win-rate vs labels) and Figure 3 (BT-probability histograms)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apl.reports.collect import RunRecord
from apl.reports.tables import Point

BINS_PER_SIDE = 10  # the paper's 10 red bins on [0, 0.5) and 10 green bins on (0.5, 1]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_win_rate(points: dict[str, list[Point]], path: Path) -> Path:
    """Figure 2: mean win-rate against labels acquired, one line per strategy, ± SE bands."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for strategy, pts in points.items():
        x = np.array([p.labels for p in pts])
        y = np.array([p.mean for p in pts])
        se = np.nan_to_num(np.array([p.stderr for p in pts]))
        (line,) = ax.plot(x, y, marker="o", label=strategy)
        ax.fill_between(x, y - se, y + se, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("labels acquired")
    ax.set_ylabel("win-rate (mean ± SE over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Histogram:
    """Figure 3 counts for one strategy and round, pooled over seeds."""

    strategy: str
    round: int
    incorrect: np.ndarray  # counts in 10 bins over [0, 0.5): the model favoured the loser
    correct: np.ndarray  # counts in 10 bins over (0.5, 1]: the model favoured the oracle's pick
    undecided: int  # exactly 0.5: policy == reference (cold start), no opinion

    @property
    def total(self) -> int:
        """Acquired pairs counted."""
        return int(self.incorrect.sum() + self.correct.sum()) + self.undecided


def bt_histograms(groups: dict[str, list[RunRecord]]) -> list[Histogram]:
    """Histograms of the probability each strategy's policy gave the oracle's choice, per round."""
    edges_low = np.linspace(0.0, 0.5, BINS_PER_SIDE + 1)
    edges_high = np.linspace(0.5, 1.0, BINS_PER_SIDE + 1)
    out = []
    for strategy, runs in groups.items():
        rounds = sorted({a.round for r in runs for a in r.acquired})
        for round in rounds:
            probs = np.array([a.oracle_prob for r in runs for a in r.acquired if a.round == round])
            low, high = probs[probs < 0.5], probs[probs > 0.5]
            out.append(
                Histogram(
                    strategy,
                    round,
                    np.histogram(low, bins=edges_low)[0],
                    np.histogram(high, bins=edges_high)[0],
                    int(np.sum(probs == 0.5)),
                )
            )
    return out


def plot_bt_histograms(hists: list[Histogram], path: Path) -> Path:
    """Figure 3: one panel per strategy (rows) and round (columns); red incorrect, green correct."""
    plt = _pyplot()
    strategies = list(dict.fromkeys(h.strategy for h in hists))
    rounds = sorted({h.round for h in hists})
    rows, cols = max(1, len(strategies)), max(1, len(rounds))
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.2 * cols + 1, 1.9 * rows + 0.6), squeeze=False, sharex=True
    )
    width = 0.5 / BINS_PER_SIDE
    centres_low = np.linspace(0.0, 0.5, BINS_PER_SIDE + 1)[:-1] + width / 2
    lookup = {(h.strategy, h.round): h for h in hists}
    for i, strategy in enumerate(strategies):
        for j, round in enumerate(rounds):
            ax = axes[i][j]
            h = lookup.get((strategy, round))
            if h is not None:
                ax.bar(centres_low, h.incorrect, width=width, color="tab:red", label="incorrect")
                ax.bar(
                    centres_low + 0.5, h.correct, width=width, color="tab:green", label="correct"
                )
                if h.undecided:  # cold start: one grey bar at 0.5, between the two sides
                    ax.bar(0.5, h.undecided, width=width, color="tab:gray", label="at 0.5")
                    ax.text(
                        0.5,
                        0.92,
                        f"{h.undecided} at 0.5",
                        transform=ax.transAxes,
                        ha="center",
                        va="top",
                        fontsize=7,
                    )
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(f"round {round}", fontsize=9)
            if j == 0:
                ax.set_ylabel(strategy, fontsize=8)
    fig.supxlabel("P(oracle's choice) under the acquiring policy", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def histogram_markdown(hists: list[Histogram]) -> str:
    """Per strategy and round: pairs, share the model got right, confidently wrong (< 0.2), undecided."""
    lines = [
        "| strategy | round | pairs | correct (> 0.5) | incorrect (< 0.5) | confidently wrong (< 0.2) | at 0.5 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for h in hists:
        decided = int(h.correct.sum() + h.incorrect.sum())
        share = "-" if decided == 0 else f"{h.correct.sum() / decided:.2f}"
        wrong = int(h.incorrect[: round(0.2 / (0.5 / BINS_PER_SIDE))].sum())
        lines.append(
            f"| {h.strategy} | {h.round} | {h.total} | {int(h.correct.sum())} ({share}) | "
            f"{int(h.incorrect.sum())} | {wrong} | {h.undecided} |"
        )
    return "\n".join(lines) + "\n"
