"""`apl pretrain`: a byte-level BPE and a small GPT-2 trained on the IMDB train text.

Read top to bottom: data, model, the loop, save; the defaults live in `apl.pretrain.config`.
They reproduce the shipped `builtin:imdb-gpt2` from its seed; training length is a
fixed number of optimiser steps, never wall time, so a slow or shared machine changes only
how long it takes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from apl.errors import ConfigError
from apl.log import console, live_display
from apl.policy.model import bf16_supported
from apl.pretrain.card import write_outputs
from apl.pretrain.config import SAMPLE_PROMPTS, PretrainConfig, make_pretrain_config
from apl.pretrain.data import batch_stream, imdb_texts, pack_blocks, validation_blocks
from apl.pretrain.model_init import init_gpt2
from apl.pretrain.tokenizer import train_tokenizer

logger = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "PretrainResult", "evaluate_loss", "make_pretrain_config", "pretrain"]


@dataclass
class PretrainResult:
    """What a pretraining run produced and how long it took."""

    output_dir: Path
    val_loss: float  # fp32 weights at the end of training
    saved_val_loss: float  # the saved weights (bf16 if `save_dtype` is) loaded back in fp32
    num_params: int
    tokens_seen: int
    wall_s: float
    curve: list[dict[str, float]] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)


def lr_at(step: int, config: PretrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warmup, cosine to the floor."""
    floor = config.learning_rate * config.min_lr_ratio
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return floor + 0.5 * (config.learning_rate - floor) * (1 + math.cos(math.pi * progress))


def autocast_for(enabled: bool) -> contextlib.AbstractContextManager:
    """CPU bf16 autocast when `enabled`, else a no-op context."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, blocks: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token loss (nats/token) over `blocks`, in the model's own dtype (no autocast)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, blocks.size(0), batch_size):
        batch = blocks[start : start + batch_size].to(device)
        loss = model(input_ids=batch, labels=batch).loss
        predicted = batch.numel() - batch.size(0)  # the first token of each row is not predicted
        total += loss.float().item() * predicted
        count += predicted
    model.train(was_training)
    return total / count


def _optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    matrices = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    others = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": matrices, "weight_decay": config.weight_decay},
        {"params": others, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2)
    )


@torch.no_grad()
def _samples(model, tokenizer, config: PretrainConfig) -> list[str]:
    model.eval()
    out = []
    for i, prompt in enumerate(SAMPLE_PROMPTS[: config.num_samples]):
        torch.manual_seed(config.seed + i)
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        gen = model.generate(
            **enc,
            do_sample=True,
            temperature=0.7,
            top_k=0,
            max_new_tokens=min(48, config.n_positions - enc["input_ids"].size(1)),
            pad_token_id=tokenizer.pad_token_id,
        )
        out.append(tokenizer.decode(gen[0], skip_special_tokens=True))
    return out


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]pretrain"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=False,
    )


def pretrain(
    config: PretrainConfig, show_progress: bool = True, command: str = ""
) -> PretrainResult:
    """Train tokenizer + GPT-2 per `config`, save like a hub model to `config.output_dir`."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    use_bf16 = bf16_supported(torch.device("cpu")) if config.bf16 is None else config.bf16
    out_dir = Path(config.output_dir)

    train_texts = imdb_texts("train", config.max_train_reviews)
    tokenizer = train_tokenizer(train_texts, vocab_size=config.vocab_size)
    train_blocks = pack_blocks(tokenizer, train_texts, config.n_positions)
    val = validation_blocks(tokenizer, config.n_positions, config.val_blocks)
    if train_blocks.size(0) < config.batch_size:
        raise ConfigError(
            f"--batch-size ({config.batch_size}) exceeds the {train_blocks.size(0)} training "
            "blocks; lower it or use more reviews."
        )
    logger.info(
        "tokenizer %d tokens; %d train blocks (%.1fM tokens), %d val blocks; bf16 autocast %s",
        len(tokenizer),
        train_blocks.size(0),
        train_blocks.numel() / 1e6,
        val.size(0),
        use_bf16,
    )

    model = init_gpt2(
        tokenizer,
        n_layer=config.n_layer,
        n_embd=config.n_embd,
        n_head=config.n_head,
        n_positions=config.n_positions,
        seed=config.seed,
    )
    num_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "GPT-2: %d layers, width %d, %.2fM parameters",
        config.n_layer,
        config.n_embd,
        num_params / 1e6,
    )
    optimizer = _optimizer(model, config)
    batches = batch_stream(train_blocks, config.batch_size, config.seed)

    curve = [_point(0, 0, 0.0, math.nan, evaluate_loss(model, val), start)]
    window: list[float] = []
    loop_start = time.perf_counter()
    model.train()
    # A bar on a terminal; elsewhere (CI, nohup, a log file) each curve point is a log line.
    live = show_progress and live_display()
    point_level = logging.INFO if show_progress and not live else logging.DEBUG
    with _progress(live) as progress:
        task = progress.add_task("pretrain", total=config.max_steps, status="")
        for step in range(config.max_steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = next(batches)
            with autocast_for(use_bf16):
                loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            window.append(loss.item())
            done = step + 1
            if done % config.eval_every == 0 or done == config.max_steps:
                tokens = done * config.batch_size * config.n_positions
                curve.append(
                    _point(
                        done,
                        tokens,
                        lr,
                        sum(window) / len(window),
                        evaluate_loss(model, val),
                        start,
                    )
                )
                window.clear()
                point = curve[-1]
                logger.log(
                    point_level,
                    "step %d/%d: train loss %.3f, val loss %.3f",
                    done,
                    config.max_steps,
                    point["train_loss"],
                    point["val_loss"],
                )
            tok_s = done * batch.numel() / max(1e-9, time.perf_counter() - loop_start)
            status = f"loss {loss.item():.3f} val {curve[-1]['val_loss']:.3f} {tok_s:,.0f} tok/s"
            progress.update(task, advance=1, status=status)

    samples = _samples(model, tokenizer, config)
    saved_val = _save(model, tokenizer, out_dir, config, val)
    result = PretrainResult(
        output_dir=out_dir,
        val_loss=curve[-1]["val_loss"],
        saved_val_loss=saved_val,
        num_params=num_params,
        tokens_seen=config.max_steps * config.batch_size * config.n_positions,
        wall_s=time.perf_counter() - start,
        curve=curve,
        samples=samples,
    )
    write_outputs(result, config.model_dump(), command)
    logger.info(
        "val loss %.4f (saved %s weights: %.4f) in %.0f s",
        result.val_loss,
        config.save_dtype,
        saved_val,
        result.wall_s,
    )
    return result


def _point(
    step: int, tokens: int, lr: float, train_loss: float, val_loss: float, start: float
) -> dict[str, float]:
    return {
        "step": step,
        "tokens": tokens,
        "learning_rate": lr,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }


def _save(model, tokenizer, out_dir: Path, config: PretrainConfig, val: torch.Tensor) -> float:
    """save_pretrained model + tokenizer; return the saved weights' val loss, read back in fp32."""
    from transformers import AutoModelForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = torch.bfloat16 if config.save_dtype == "bfloat16" else torch.float32
    model.to(dtype).save_pretrained(out_dir)
    # Stored in bf16 to halve the files, but loaded as fp32 by default (`dtype="auto"` reads
    # the config): DPO's tiny updates need fp32 weights.
    model.config.dtype = torch.float32
    model.config.save_pretrained(out_dir)
    tokenizer.model_max_length = config.n_positions  # callers truncate to what the model takes
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir)
    return evaluate_loss(reloaded, val)
