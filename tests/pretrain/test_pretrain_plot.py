"""The loss-curve plot reads a loss log and writes a PNG."""

from __future__ import annotations

import math

from apl.pretrain.card import read_loss_log, write_loss_log
from apl.pretrain.plot import plot_loss_curve


def test_loss_log_round_trips_and_plots_to_png(tmp_path):
    curve = [
        {
            "step": s,
            "tokens": s * 4096,
            "learning_rate": 1e-3,
            "train_loss": 9.0 - s / 10 if s else math.nan,  # no train loss before step 1
            "val_loss": 9.0 - s / 11,
            "elapsed_s": float(s),
        }
        for s in range(0, 41, 10)
    ]
    log = tmp_path / "loss_log.csv"
    write_loss_log(curve, log)
    rows = read_loss_log(log)
    assert [r["step"] for r in rows] == [0, 10, 20, 30, 40]
    assert math.isnan(rows[0]["train_loss"]) and abs(rows[-1]["val_loss"] - (9.0 - 40 / 11)) < 1e-3
    png = plot_loss_curve(log, tmp_path / "docs" / "curve.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
