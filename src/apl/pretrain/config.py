"""`apl pretrain`'s options: every default in one block, each with why (nanoGPT-style).

Kept apart from the training loop so the CLI can show defaults without importing torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from apl.errors import ConfigError

SAMPLE_PROMPTS = ("This movie", "I have to say", "The acting was", "Worst film")


class PretrainConfig(BaseModel):
    """Every pretraining default in one block; the CLI and tests only override them."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str = "imdb-gpt2"
    seed: int = 0  # seeds init, data order and samples: same seed, same weights
    # data
    max_train_reviews: int | None = Field(None, ge=1)  # None: all ~22.5k train reviews
    val_blocks: int = Field(256, ge=1)  # 32k held-out test-split tokens: ~0.01 nats of noise
    # tokenizer: 8k byte-level BPE; GPT-2's 50k would make the embedding 80% of the model
    vocab_size: int = Field(8192, ge=257)
    # model: 5.3M parameters; 6 layers x 384 was 2-2.5x slower and worse at equal time here
    n_layer: int = Field(4, ge=1)
    n_embd: int = Field(256, ge=8)
    n_head: int = Field(4, ge=1)
    n_positions: int = Field(128, ge=8)  # context; IMDB prompts + completions fit in 64
    # optimisation: AdamW, linear warmup then cosine decay to lr/10 (nanoGPT's recipe)
    max_steps: int = Field(
        1000, ge=1
    )  # x 32 x 128 = 4.1M tokens, ~0.57 epoch of the 7.2M-token IMDB train
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(3e-3, gt=0)  # beat 1e-3 at equal time on this model
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.1, ge=0)  # on matrices only, not biases/LayerNorm
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95  # small-batch LM training is steadier than with 0.999
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: bool | None = None  # autocast; None = on where the CPU/GPU has bf16 (~1.3x on CPU)
    # logging and output
    eval_every: int = Field(50, ge=1)  # steps between train/val points on the loss curve
    save_dtype: Literal["float32", "bfloat16"] = "bfloat16"  # halves the shipped weights
    num_samples: int = Field(4, ge=0, le=len(SAMPLE_PROMPTS))

    @model_validator(mode="after")
    def _check_heads(self) -> PretrainConfig:
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) is not divisible by n_head ({self.n_head}); change one."
            )
        return self


def make_pretrain_config(**overrides: object) -> PretrainConfig:
    """PretrainConfig from keyword overrides (None = keep the default), one-line ConfigError."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        config = PretrainConfig(**given)  # type: ignore[arg-type]
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across options names them itself
            raise ConfigError(f"apl pretrain: {msg}") from None
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise ConfigError(f"{option} ({first['input']!r}): {msg}; pass a valid value.") from None
    # Checked now, not after minutes of training: the save is the last step.
    out = Path(config.output_dir)
    blocker = next((p for p in (out, *out.absolute().parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(
            f"--output-dir ({config.output_dir!r}): {blocker} is a file; choose a directory."
        )
    return config


def default_of(name: str) -> object:
    """The default of one PretrainConfig option (for CLI help)."""
    return PretrainConfig.model_fields[name].default
