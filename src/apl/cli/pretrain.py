"""`apl pretrain`: rebuild the shipped offline base model."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from apl.cli import app, handle_errors


def _pt(help_text: str, name: str) -> Any:
    """A `apl pretrain` option whose help shows PretrainConfig's default."""
    from apl.pretrain.config import default_of

    return typer.Option(help=f"{help_text} Default: {default_of(name)}.")


@app.command()
@handle_errors
def pretrain(
    output_dir: Annotated[str | None, _pt("Where to save_pretrained.", "output_dir")] = None,
    max_steps: Annotated[int | None, _pt("Optimiser steps.", "max_steps")] = None,
    seed: Annotated[int | None, _pt("Seed: init, data order, samples.", "seed")] = None,
    vocab_size: Annotated[int | None, _pt("BPE vocabulary size.", "vocab_size")] = None,
    n_layer: Annotated[int | None, _pt("Transformer layers.", "n_layer")] = None,
    n_embd: Annotated[int | None, _pt("Width.", "n_embd")] = None,
    n_head: Annotated[int | None, _pt("Attention heads.", "n_head")] = None,
    n_positions: Annotated[int | None, _pt("Context length.", "n_positions")] = None,
    batch_size: Annotated[int | None, _pt("Blocks per step.", "batch_size")] = None,
    learning_rate: Annotated[float | None, _pt("Peak AdamW lr.", "learning_rate")] = None,
    eval_every: Annotated[int | None, _pt("Steps between curve points.", "eval_every")] = None,
    bf16: Annotated[
        bool | None,
        typer.Option("--bf16/--no-bf16", help="bf16 autocast. Default: where supported."),
    ] = None,
    max_train_reviews: Annotated[
        int | None,
        typer.Option(help="Use only the first N train reviews (smoke runs). Default: all."),
    ] = None,
) -> None:
    """Train the BPE tokenizer and small GPT-2 on IMDB train text (the shipped default model)."""
    from apl.pretrain.config import make_pretrain_config  # checked before torch is imported

    config = make_pretrain_config(
        output_dir=output_dir,
        max_steps=max_steps,
        seed=seed,
        vocab_size=vocab_size,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        batch_size=batch_size,
        learning_rate=learning_rate,
        eval_every=eval_every,
        bf16=bf16,
        max_train_reviews=max_train_reviews,
    )
    from apl.pretrain.train import pretrain as run_pretrain

    result = run_pretrain(config, command=" ".join(["apl", *sys.argv[1:]]))
    typer.echo(
        f"saved {result.output_dir}: val loss {result.val_loss:.4f} nats/token (saved weights "
        f"{result.saved_val_loss:.4f}), {result.tokens_seen:,} tokens, {result.wall_s:.0f} s"
    )
