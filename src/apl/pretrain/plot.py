"""Plot a pretraining loss log (train + validation loss against tokens) to a PNG.

Usage: `python -m apl.pretrain.plot src/apl/assets/imdb-gpt2/loss_log.csv docs/PRETRAIN.png`
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from apl.pretrain.card import read_loss_log

QUALITY_BAR = 5.5  # nats/token: the ceiling for the shipped model's validation loss


def plot_loss_curve(log_csv: Path, png: Path) -> Path:
    """Draw train and validation loss per token seen, with the 5.5 quality bar; return `png`."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    rows = read_loss_log(Path(log_csv))
    tokens = [r["tokens"] / 1e6 for r in rows]
    train = [(t, r["train_loss"]) for t, r in zip(tokens, rows, strict=True)]
    train = [(t, v) for t, v in train if not math.isnan(v)]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot([t for t, _ in train], [v for _, v in train], label="train (mean since last point)")
    ax.plot(tokens, [r["val_loss"] for r in rows], marker="o", ms=3, label="validation (IMDB test)")
    ax.axhline(QUALITY_BAR, color="grey", ls="--", lw=1, label=f"quality bar {QUALITY_BAR}")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_ylim(bottom=min(4.5, min(r["val_loss"] for r in rows) - 0.2), top=8.0)
    ax.set_title("apl pretrain: imdb-gpt2")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


if __name__ == "__main__":
    plot_loss_curve(Path(sys.argv[1]), Path(sys.argv[2]))
