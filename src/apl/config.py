"""Typed run configuration: one pydantic model per YAML section; defaults live only here.

Option names follow TRL where TRL has the concept (`learning_rate`, `beta`,
`per_device_train_batch_size`, ...). A registry section (`task`, `acquisition`, `oracle`)
holds `name:` plus that class's keyword arguments, checked against the class at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from apl.errors import ConfigError

BUILTIN_MODEL = "builtin:imdb-gpt2"  # the small GPT-2 apl pretrains on IMDB and ships


class StrictModel(BaseModel):
    """A config section: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentConfig(BaseModel):
    """A registry pick: `name` plus keyword arguments for the chosen class."""

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        """Everything but `name`, passed to the class."""
        return dict(self.model_extra or {})


class TaskConfig(ComponentConfig):
    """Which prompt pool: `imdb`, `tldr` or `custom` (with `path`, `prompt_column`, ...)."""

    name: str = "imdb"


class LoraConfig(StrictModel):
    """PEFT LoRA adapter; the reference is the base with the adapter disabled."""

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


class ModelConfig(StrictModel):
    """The policy: any Hugging Face causal LM, by hub name or local path."""

    model_name_or_path: str = BUILTIN_MODEL
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # Weights dtype. `auto` keeps fp32 weights: DPO's lr 1e-6 updates vanish in bf16 weights.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # bf16 autocast for forward passes; `None` turns it on where the hardware supports it.
    bf16: bool | None = None
    lora: LoraConfig | None = None
    trust_remote_code: bool = False


class GenerationConfig(StrictModel):
    """How the policy samples completions for acquisition (paper: T=0.7, 16-24 tokens)."""

    temperature: float = Field(0.7, gt=0)
    # New tokens per completion, drawn uniformly from [min_new_tokens, max_new_tokens].
    min_new_tokens: int = Field(16, ge=1)
    max_new_tokens: int = Field(24, ge=1)
    batch_size: int = Field(64, ge=1)
    # Decode steps through torch.compile. None: on where a run samples past compile's
    # break-even (~7,000 completions with a warm inductor cache, docs/BENCHMARKS.md) on a CPU
    # with a C++ compiler; off for shorter runs, tests and other devices unless set to true.
    compile: bool | None = None
    # Strings that end a completion (kept in its tokens, cut from its text), besides the model's
    # end-of-turn tokens; [] since chat models end their turn with a token of their own.
    stop: list[str] = []

    @model_validator(mode="after")
    def _check_range(self) -> GenerationConfig:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) > max_new_tokens "
                f"({self.max_new_tokens}); lower min_new_tokens."
            )
        return self

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, stop: list[str]) -> list[str]:
        if any(not s for s in stop):
            raise ValueError("it holds an empty string; remove it.")
        return stop


class AcquisitionConfig(ComponentConfig):
    """Which acquisition function ranks candidate pairs, and its options."""

    name: str = "certainty"


class OracleConfig(ComponentConfig):
    """Which judge labels pairs (and evaluates), and its options."""

    name: str = "imdb_judge"


class LoopConfig(StrictModel):
    """Algorithm 1's sizes: budget B, acquisition batch M, prompt pool S per round."""

    # Offline defaults, sized so `apl run` on the shipped model finishes in ~4 minutes on 2 CPU
    # cores (docs/RESULTS.md); the paper's are B 768, M 128, S 4000 (configs/paper_imdb.yaml).
    label_budget: int = Field(512, ge=1)  # B: labels to buy over the whole run
    query_size: int = Field(64, ge=1)  # M: pairs labelled per round
    pool_size: int = Field(512, ge=1)  # S: fresh prompts sampled per round

    @property
    def num_rounds(self) -> int:
        """T = floor(B / M)."""
        return self.label_budget // self.query_size

    @model_validator(mode="after")
    def _check_sizes(self) -> LoopConfig:
        if self.query_size > self.pool_size:
            raise ValueError(
                f"query_size ({self.query_size}) > pool_size ({self.pool_size}); "
                "lower query_size or raise pool_size."
            )
        if self.label_budget < self.query_size:
            raise ValueError(
                f"label_budget ({self.label_budget}) < query_size ({self.query_size}); "
                "raise label_budget or lower query_size."
            )
        return self


class DPOConfig(StrictModel):
    """DPO fine-tuning after each round (paper: beta 0.2, Adam lr 1e-6, batch 64, 50 epochs).

    The learning rate and epochs are calibrated for the shipped 5M-parameter model: at the
    paper's lr 1e-6 it does not move in 50 epochs (docs/EPOCHS.md, benchmarks/calibrate_dpo.py).
    Large models want the paper's values (configs/paper_imdb.yaml).
    """

    mode: Literal["reset", "continue", "online"] = "reset"
    loss_type: Literal["sigmoid"] = "sigmoid"  # paper eq. 4; TRL's name for it
    beta: float = Field(0.2, gt=0)
    learning_rate: float = Field(3e-4, gt=0)  # paper: 1e-6 (for 774M-805M parameters)
    weight_decay: float = Field(0.0, ge=0)  # 0: AdamW is the paper's plain Adam
    max_grad_norm: float | None = Field(None, gt=0)  # None: no clipping (the paper clips nothing)
    per_device_train_batch_size: int = Field(64, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: int = Field(10, ge=1)  # paper: 50 (IMDB) / 70 (TLDR); see docs/EPOCHS.md
    max_steps: int = -1  # > 0 caps optimiser steps per round, overriding epochs
    max_length: int | None = None  # prompt + completion tokens; None = model context
    # Tokens per forward pass: a batch is split into chunks this size (gradients add up, so
    # the step is the same). None: 1024 on CPU, where smaller chunks ran as fast and kept a
    # third of the memory (docs/BENCHMARKS.md); unsplit on accelerators.
    max_forward_tokens: int | None = Field(None, ge=1)
    disable_dropout: bool = True
    # Appendix E: hold out a fraction of labels, log validation loss per epoch.
    validation_fraction: float = Field(0.0, ge=0, lt=1)
    early_stopping_patience: int | None = None  # epochs without val improvement


class EvaluationConfig(StrictModel):
    """Win-rate on held-out prompts, judged by the run's oracle."""

    num_prompts: int = Field(256, ge=1)  # paper: 1024; 256 gives a standard error of ~0.025
    temperature: float = Field(0.25, gt=0)
    # Labelled-set sizes after which to evaluate; None = after every round. Each must be a size a
    # round ends at (a multiple of loop.query_size up to the budget), checked at load.
    waypoints: list[int] | None = None
    # `initial`: against the initial model's completions; `reference`: the pool's references
    # (every eval prompt must have one, checked before the run starts).
    baseline: Literal["auto", "initial", "reference"] = "auto"


class TrackingConfig(StrictModel):
    """Experiment trackers that receive every round's ledger metrics; see docs/TRACKING.md.

    A section of its own, not a `dpo:` option as in TRL: trackers get every stage's metrics
    (labels, judge, evaluation, spend, timings), not just training's.
    """

    # TRL's / transformers' name and values: a name, a list, `all` (every installed tracker)
    # or `none`. Default `none`: a run sends nothing anywhere and needs no extra package.
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio", "all"]] = []
    project: str = "apl"  # W&B / trackio project, MLflow experiment
    run_name: str | None = None  # None: the run directory's name

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list) and "none" in names:
            if len(names) > 1:
                raise ValueError("'none' cannot be combined with trackers; drop one of them.")
            return []
        return names


class APLConfig(StrictModel):
    """A whole run."""

    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    generation: GenerationConfig = GenerationConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    oracle: OracleConfig = OracleConfig()
    loop: LoopConfig = LoopConfig()
    dpo: DPOConfig = DPOConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    tracking: TrackingConfig = TrackingConfig()
    # `{task}`, `{acquisition}`, `{oracle}` and `{seed}` are filled in, so runs differing in
    # those land in different directories by default.
    output_dir: str = "runs/{task}-{acquisition}-seed{seed}"
    seed: int = 0

    @model_validator(mode="after")
    def _check_waypoints(self) -> APLConfig:
        # A waypoint no round reaches would silently never be evaluated: refuse it up front.
        waypoints = self.evaluation.waypoints
        if waypoints:
            M, rounds = self.loop.query_size, self.loop.num_rounds
            reachable = [r * M for r in range(1, rounds + 1)]
            missed = sorted({w for w in waypoints if w not in reachable})
            if missed:
                sizes = ", ".join(map(str, reachable))
                if rounds > 6:
                    sizes = f"{M}, {2 * M}, {3 * M}, ..., {rounds * M}"
                raise ValueError(
                    f"evaluation.waypoints ({waypoints}): {', '.join(map(str, missed))} "
                    f"{'is' if len(missed) == 1 else 'are'} never reached; rounds end at {sizes} "
                    f"labels (multiples of loop.query_size {M} up to loop.label_budget "
                    f"{self.loop.label_budget}); use those sizes."
                )
        return self

    @model_validator(mode="after")
    def _fill_output_dir(self) -> APLConfig:
        if "{" in self.output_dir:
            try:
                filled = self.output_dir.format(
                    task=self.task.name,
                    acquisition=self.acquisition.name,
                    oracle=self.oracle.name,
                    seed=self.seed,
                )
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"output_dir ({self.output_dir!r}) has an unknown placeholder {err}; use "
                    "{task}, {acquisition}, {oracle} or {seed}."
                ) from None
            object.__setattr__(self, "output_dir", filled)
        return self


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"Override {key!r}: {part!r} is not a section; use section.option=value."
            )
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.option=value` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} has no '='; write it as section.option=value.")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"Override {item!r} has no key; write it as section.option=value.")
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw != "" else "")
    return data


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if not loc:  # a whole-config check: its message names the options itself
        return f"{source}: {msg}"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown option {loc!r}; check the spelling (see `apl config`)."
    value = first.get("input")
    shown = f" ({value!r})" if value is not None and not isinstance(value, dict) else ""
    if first["type"] != "value_error":  # pydantic's own wording says what, not how to fix
        msg = f"{msg[:1].lower()}{msg[1:]}; fix the value (`apl config` shows every default)."
    return f"{source}: {loc}{shown}: {msg}"


def config_from_dict(data: dict[str, Any], source: str = "config") -> APLConfig:
    """Validate a raw dict into an APLConfig, with a one-line ConfigError on failure."""
    try:
        return APLConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; an unreadable file or bad YAML is a one-line ConfigError naming `what`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ConfigError(f"{what} cannot be read ({reason}); pass a readable YAML file.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{what} is not valid YAML{where}: {problem}; fix the file.") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> APLConfig:
    """Load YAML (or the defaults when `path` is None) and apply command-line overrides."""
    data: dict[str, Any] = {}
    source = "command line" if overrides else "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            problem = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(f"Config file {path} {problem}; pass an existing YAML file.")
        loaded = read_yaml(path, f"Config file {path}")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"Config file {path} must hold a mapping of sections, not {type(loaded).__name__}."
            )
        data = loaded or {}
    apply_overrides(data, overrides or [])
    return config_from_dict(data, source)


def dump_config(config: APLConfig) -> str:
    """The resolved config as YAML, every default spelled out."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
