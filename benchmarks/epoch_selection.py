"""Epoch selection (paper Appendix E): validation DPO loss and held-out win-rate per fine-tuning epoch.

For each labelled-set size: label random pairs with the offline judge (the largest set; smaller
sizes are its prefixes), hold out `--validation-fraction` of them, then train DPO one epoch at a
time (`dpo.mode=continue`, one epoch per `train` call, so optimiser state carries over exactly
as in one multi-epoch call) from the initial model, and after each epoch record train loss,
validation loss and reward accuracy, and the win-rate of held-out prompts' completions against
the initial model's, judged by the run's oracle. Writes a CSV, a PNG and docs/EPOCHS.md, and
picks the epoch count by the one-standard-error rule on the win-rate.

    python benchmarks/epoch_selection.py                        # the offline model; the lead runs it
    python benchmarks/epoch_selection.py --smoke --model DIR    # seconds, tiny model, not into docs/
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COLUMNS = [
    "labels",
    "epoch",
    "train_loss",
    "val_loss",
    "val_reward_accuracy",
    "win_rate",
    "win_rate_stderr",
]


def labelled_set(c, size: int, seed: int) -> list:
    """`size` random pairs from the train pool with A/B verdicts from the run's oracle."""
    from apl.data import sample_prompts
    from apl.oracles import JudgeRequest
    from apl.types import Preference, Verdict

    rng = np.random.default_rng(seed)
    prompts = sample_prompts(c.train_prompts, 2 * size, rng, option="--labels", pool="imdb/train")
    pairs = c.acquisition.acquire(prompts, c.view, size, rng)
    judgements = c.oracle.judge_batch(
        [JudgeRequest(p.prompt.text, p.a.text, p.b.text) for p in pairs]
    )
    out = []
    for pair, j in zip(pairs, judgements, strict=True):
        if j.verdict in (Verdict.A, Verdict.B):
            a_wins = j.verdict is Verdict.A
            out.append(
                Preference(
                    pair.prompt,
                    pair.a if a_wins else pair.b,
                    pair.b if a_wins else pair.a,
                    pair.ref_logp_a if a_wins else pair.ref_logp_b,
                    pair.ref_logp_b if a_wins else pair.ref_logp_a,
                )
            )
    if len(out) < size:
        raise SystemExit(f"only {len(out)} usable verdicts for --labels {size}; lower it")
    return out[:size]


def win_rate(c, prompts, baseline, seed: int) -> tuple[float, float]:
    """Win-rate ± SE of the current policy against `baseline` completions."""
    from apl.evaluation.win_rate import evaluate
    from apl.loop.evaluating import eval_completions
    from apl.oracles import JudgeRequest

    made = eval_completions(c, prompts, seed)
    result = evaluate(
        prompts,
        [m.text for m in made],
        [b.text for b in baseline],
        c.oracle.judge_batch,
        JudgeRequest,
    ).result
    return result.win_rate, result.stderr


def choose_epoch(rows: list[dict]) -> int:
    """Smallest epoch whose win-rate is within one standard error of the best win-rate."""
    judged = [r for r in rows if r["win_rate"] is not None and not math.isnan(r["win_rate"])]
    best = max(judged, key=lambda r: r["win_rate"])
    floor = best["win_rate"] - (
        0.0 if math.isnan(best["win_rate_stderr"]) else best["win_rate_stderr"]
    )
    return min(r["epoch"] for r in judged if r["win_rate"] >= floor)


def plot(rows: list[dict], path: Path) -> None:
    """Loss (train dashed, validation solid) and win-rate ± SE against epochs, one colour per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_win) = plt.subplots(1, 2, figsize=(10, 4))
    for i, size in enumerate(sorted({r["labels"] for r in rows})):
        mine = [r for r in rows if r["labels"] == size]
        colour = f"C{i}"
        epochs = [r["epoch"] for r in mine]
        ax_loss.plot(
            epochs,
            [r["train_loss"] for r in mine],
            "--",
            color=colour,
            label=f"{size} labels: train",
        )
        ax_loss.plot(
            epochs,
            [r["val_loss"] for r in mine],
            "-",
            color=colour,
            label=f"{size} labels: validation",
        )
        judged = [r for r in mine if r["win_rate"] is not None]
        x = np.array([r["epoch"] for r in judged])
        y = np.array([r["win_rate"] for r in judged])
        se = np.nan_to_num(np.array([r["win_rate_stderr"] for r in judged]))
        ax_win.plot(x, y, marker="o", color=colour, label=f"{size} labels")
        ax_win.fill_between(x, y - se, y + se, color=colour, alpha=0.2)
    ax_loss.set(xlabel="epoch", ylabel="DPO loss", title="loss")
    ax_win.set(xlabel="epoch", ylabel="win-rate vs initial model (± SE)", title="held-out win-rate")
    for ax in (ax_loss, ax_win):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_doc(doc: Path, rows: list[dict], sizes: list[int], config, args, wall: float) -> dict:
    """EPOCHS.md: command, setup, figure, the chosen epochs per size; returns them."""
    from apl.config import APLConfig

    chosen = {size: choose_epoch([r for r in rows if r["labels"] == size]) for size in sizes}
    best_val = {}
    for size in sizes:
        with_val = [r for r in rows if r["labels"] == size and r["val_loss"] is not None]
        best_val[size] = min(with_val, key=lambda r: r["val_loss"])["epoch"] if with_val else "-"
    figure = os.path.relpath(args.out / "epochs.png", doc.parent)
    data = os.path.relpath(args.out / "epochs.csv", doc.parent)
    smoke = "**SMOKE TEST on a tiny random-weight model: the numbers below mean nothing.**\n"
    lines = [
        "# Epoch selection (paper Appendix E)\n",
        smoke if args.smoke else "",
        (
            f"Command (repo root): `python benchmarks/epoch_selection.py {' '.join(sys.argv[1:])}`;"
            f" {wall / 60:.1f} min, finished {time.strftime('%Y-%m-%d %H:%M')}; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared with other jobs if "
            "above the count).\n"
        ),
        (
            f"Model `{config.model.model_name_or_path}`, oracle `{config.oracle.name}`, random "
            f"pairs, {args.validation_fraction:.0%} held out for validation, DPO beta "
            f"{config.dpo.beta}, lr {config.dpo.learning_rate:g}, batch "
            f"{config.dpo.per_device_train_batch_size}; win-rate on "
            f"{config.evaluation.num_prompts} test prompts against the initial model.\n"
        ),
        f"![loss and win-rate against epochs]({figure})\n",
        "| labels | epochs by the one-SE rule on win-rate | lowest validation loss at epoch |",
        "|---:|---:|---:|",
        *[f"| {s} | {chosen[s]} | {best_val[s]} |" for s in sizes],
        "",
        (
            f"Chosen for the defaults: **{max(chosen.values())} epoch(s)**, the largest of the "
            "one-SE choices, so the largest labelled set converges (`dpo.num_train_epochs` is "
            f"{APLConfig().dpo.num_train_epochs} now). Data: `{data}`.\n"
        ),
    ]
    doc.write_text("\n".join(lines), encoding="utf-8")
    return chosen


def main() -> None:
    """Label, train epoch by epoch, evaluate, write CSV + PNG + Markdown."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="Policy (default: apl run's default model).")
    parser.add_argument(
        "--labels", type=int, nargs="+", default=None, help="Default: M and B of the defaults."
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="Default: 2 x dpo.num_train_epochs."
    )
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument(
        "--eval-every", type=int, default=1, help="Judge the win-rate every N epochs."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "epochs")
    parser.add_argument(
        "--doc", type=Path, default=None, help="Default docs/EPOCHS.md (smoke: OUT/EPOCHS.md)."
    )
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes for a quick check.")
    args = parser.parse_args()

    from apl.config import APLConfig, apply_overrides, config_from_dict
    from apl.evaluation.win_rate import choose_eval_prompts
    from apl.log import setup_logging
    from apl.loop.components import build_components, derive_seed
    from apl.loop.evaluating import eval_completions

    setup_logging()
    defaults = APLConfig()
    sizes = args.labels or (
        [16, 32] if args.smoke else [defaults.loop.query_size, defaults.loop.label_budget]
    )
    epochs = args.epochs or (4 if args.smoke else 2 * defaults.dpo.num_train_epochs)
    overrides = [
        "dpo.mode=continue",
        "dpo.num_train_epochs=1",
        f"dpo.validation_fraction={args.validation_fraction}",
        "acquisition.name=random",
        f"seed={args.seed}",
    ]
    if args.model:
        overrides.append(f"model.model_name_or_path={args.model}")
    if args.smoke:
        overrides += [
            "evaluation.num_prompts=16",
            "dpo.learning_rate=1e-3",
            "dpo.per_device_train_batch_size=8",
            "model.bf16=false",
            "generation.batch_size=32",
        ]
    config = config_from_dict(
        apply_overrides(defaults.model_dump(mode="json"), overrides), source="epoch_selection"
    )
    start = time.perf_counter()
    c = build_components(config)
    prompts = choose_eval_prompts(c.test_prompts, config.evaluation.num_prompts, config.seed)
    baseline = eval_completions(c, prompts, derive_seed(config.seed, "baseline"))
    labelled = labelled_set(c, max(sizes), config.seed)
    rows: list[dict] = []
    for size in sizes:
        c.trainer.reset()  # theta_0 and a fresh optimiser for each size
        for epoch in range(1, epochs + 1):
            metrics = c.trainer.train(labelled[:size])[-1]
            row = {
                "labels": size,
                "epoch": epoch,
                "train_loss": metrics["train/loss"],
                "val_loss": metrics.get("eval/loss"),
                "val_reward_accuracy": metrics.get("eval/rewards/accuracies"),
                "win_rate": None,
                "win_rate_stderr": None,
            }
            if epoch % args.eval_every == 0 or epoch == epochs:
                row["win_rate"], row["win_rate_stderr"] = win_rate(
                    c, prompts, baseline, derive_seed(config.seed, "eval", epoch)
                )
            rows.append(row)
            print(
                " ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                ),
                flush=True,
            )
    c.close()
    wall = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "epochs.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "epochs.png")
    doc = args.doc or (args.out / "EPOCHS.md" if args.smoke else REPO / "docs" / "EPOCHS.md")
    chosen = write_doc(doc, rows, sizes, config, args, wall)
    print(f"wrote {doc}: chosen epochs by labelled-set size {chosen}")


if __name__ == "__main__":
    main()
