"""Every check a run's inputs can fail, done before any model loads and before anything is written.

Light on purpose (no torch, no transformers): `apl run`, `apl config`, `apl resume` and
`apl sweep` call these first, so a typo fails in about a second with one line and exit 2.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from apl.acquisition import ACQUISITIONS
from apl.config import APLConfig, ModelConfig, apply_overrides, config_from_dict
from apl.data import TASKS
from apl.errors import ConfigError, ModelLoadError
from apl.oracles import ORACLES
from apl.store.run_dir import RunDir, check_run_dir, load_run_dir
from apl.tracking import check_trackers

# Injected by the loop, never set in YAML.
ORACLE_INJECTED = ("cache", "seed")


def check_oracle_options(config: APLConfig, template: str) -> dict:
    """The oracle kwargs with the task's template injected; validated before any model loads."""
    kwargs = dict(config.oracle.kwargs)
    kwargs.setdefault("template", template)
    ORACLES.check_kwargs(config.oracle.name, kwargs, injected=ORACLE_INJECTED)
    return kwargs


def check_model_source(model: ModelConfig) -> None:
    """A model given as a local path must be a directory with config.json (hub names load later)."""
    value = model.model_name_or_path
    if not value.startswith(("/", "./", "../", "~")):
        return
    path = Path(value).expanduser()
    if not (path / "config.json").is_file():
        problem = "has no config.json" if path.is_dir() else "does not exist"
        raise ModelLoadError(
            f"model.model_name_or_path ({value!r}) {problem}; give a directory saved with "
            "save_pretrained (`apl pretrain --output-dir DIR` makes one) or a hub name."
        )


def validate_config(config: APLConfig) -> None:
    """Check registry names, option names and types, constructors' own checks and data files.

    Builds the task, acquisition and oracle once without a cache and discards them, so every
    error their constructors raise (and a custom prompt file that is missing, empty or lacks
    its column) surfaces here, in milliseconds, not after the model has loaded.
    """
    TASKS.check_kwargs(config.task.name, config.task.kwargs)
    ACQUISITIONS.check_kwargs(config.acquisition.name, config.acquisition.kwargs)
    ORACLES.check_kwargs(config.oracle.name, config.oracle.kwargs, injected=ORACLE_INJECTED)
    check_trackers(config.tracking.report_to)
    if config.dpo.mode == "online" and config.dpo.validation_fraction > 0:
        raise ConfigError(
            f"dpo.validation_fraction ({config.dpo.validation_fraction}) needs epochs, but "
            "dpo.mode is 'online' (one step per round); set it to 0 or use mode 'reset'."
        )
    with _quiet():  # the real build logs these stages' notes (a missing price...) once, later
        task = TASKS.build(config.task.name, config.task.kwargs)
        ACQUISITIONS.build(config.acquisition.name, config.acquisition.kwargs)
        oracle_kwargs = check_oracle_options(config, task.judge_template)
        ORACLES.build(config.oracle.name, oracle_kwargs, cache=None, seed=0)
        check_model_source(config.model)
        task.check()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hold back apl's log lines below ERROR: a check should print nothing but its error."""
    apl_logger = logging.getLogger("apl")
    level = apl_logger.level
    apl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        apl_logger.setLevel(level)


def check_new_run(config: APLConfig) -> None:
    """Everything `apl run` checks before loading a model: the config and its output_dir."""
    validate_config(config)
    check_run_dir(config)


def resume_config(
    path: str | Path, overrides: list[str], allowed: tuple[str, ...]
) -> tuple[RunDir, APLConfig]:
    """The run at `path` and its stored config with `overrides` applied and checked.

    Only keys in `allowed` may change. Nothing is written: the caller saves the new config
    once this returned, so a bad override never reaches the run's config.yaml.
    """
    apply_overrides({}, overrides)  # syntax first: "no '='" rather than "cannot change"
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in allowed:
            raise ConfigError(
                f"`apl resume` cannot change {key!r}: it would change what the run computes; "
                f"only {', '.join(allowed)} may change (start a new output_dir otherwise)."
            )
    run_dir = load_run_dir(path)
    config = run_dir.config
    if overrides:
        data = apply_overrides(config.model_dump(mode="json"), overrides)
        config = config_from_dict(data, source="resume overrides")
    validate_config(config)
    return run_dir, config
