"""Sweep specs: a base run config times a grid of dotted-key values, one run directory per point.

A spec is YAML with `base:` (a run config file, or an inline mapping of config sections),
`grid:` (dotted keys -> lists of values), `output_dir:` (the sweep root) and optionally
`parallel:`, and `budget_usd:` / `max_calls:`, limits on the judge for all runs together. Every point of the grid's cartesian product is a full, validated `APLConfig`
whose `output_dir` is `<root>/<acquisition>-seed<seed>[-<key>=<value>...]`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from apl.config import APLConfig, apply_overrides, config_from_dict, read_yaml
from apl.errors import ConfigError

# Keys that name the run directory themselves; every other grid key is spelled out in the name.
NAMED_KEYS = ("acquisition.name", "seed")


class SweepFile(BaseModel):
    """The YAML of a sweep spec; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    base: str | dict[str, Any] = Field(default_factory=dict)  # run config path or mapping
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    output_dir: str
    parallel: int | None = Field(None, ge=1)  # None: what the cores or GPUs allow
    # Limits on all runs' judge calls together, on top of each run's own oracle limits;
    # None: no sweep-wide limit.
    budget_usd: float | None = Field(None, ge=0)
    max_calls: int | None = Field(None, ge=0)

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if key == "output_dir":
                raise ValueError("output_dir cannot be a grid key: the sweep names each run dir")
            if not values:
                raise ValueError(f"grid key {key!r} has an empty list; give it at least one value")
        return grid


@dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its directory name, resolved config and grid values."""

    name: str
    config: APLConfig
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """Where the run lives: `<sweep root>/<name>`."""
        return Path(self.config.output_dir)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: its root directory, runs in grid order and requested parallelism."""

    root: Path
    runs: list[SweepRun]
    parallel: int | None = None
    source: str = "sweep spec"
    budget_usd: float | None = None  # judge spend of all runs together (None: no limit)
    max_calls: int | None = None  # judge requests of all runs together


def _value_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def run_name(config: APLConfig, values: dict[str, Any]) -> str:
    """`<acquisition>-seed<seed>` plus `-<key>=<value>` for every other grid key, filesystem-safe."""
    parts = [f"{_value_text(config.acquisition.name)}-seed{config.seed}"]
    parts += [f"{k}={_value_text(v)}" for k, v in values.items() if k not in NAMED_KEYS]
    return "-".join(parts)


def _read_base(base: str | dict[str, Any], spec_dir: Path, source: str) -> dict[str, Any]:
    if isinstance(base, dict):
        return copy.deepcopy(base)
    candidates = [Path(base)] if Path(base).is_absolute() else [spec_dir / base, Path(base)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        tried = " or ".join(str(p) for p in dict.fromkeys(candidates))
        raise ConfigError(
            f"{source}: base config {base!r} not found (looked at {tried}); give a path relative "
            "to the spec file or the current directory, or an inline mapping."
        )
    data = read_yaml(path, f"{source}: base config {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: base config {path} must be a mapping of config sections.")
    return data


def build_sweep(
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    output_dir: str | Path,
    parallel: int | None = None,
    source: str = "sweep spec",
    budget_usd: float | None = None,
    max_calls: int | None = None,
) -> SweepSpec:
    """Expand `grid` over `base` into validated runs under `output_dir` (grid order, last key fastest)."""
    root = Path(output_dir)
    keys = list(grid)
    runs: list[SweepRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        data = apply_overrides(
            copy.deepcopy(base), [f"{k}={json.dumps(v)}" for k, v in values.items()]
        )
        data["output_dir"] = str(root / "_")
        where = f"{source} (grid point {values})" if values else source
        name = run_name(config_from_dict(data, source=where), values)
        if name in seen:
            raise ConfigError(
                f"{source}: grid points {seen[name]} and {values} both map to run dir {name!r}; "
                "make the grid values differ after replacing characters other than "
                "letters, digits and ._+- with '_'."
            )
        seen[name] = values
        data["output_dir"] = str(root / name)
        runs.append(SweepRun(name, config_from_dict(data, source=where), values))
    return SweepSpec(root, runs, parallel, source, budget_usd, max_calls)


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec YAML file (see the module docstring)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(
            f"Sweep spec {path} does not exist; pass a YAML file with base, grid, output_dir."
        )
    raw = read_yaml(path, f"Sweep spec {path}")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"Sweep spec {path} must be a mapping with base, grid and output_dir keys."
        )
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        if first["type"] == "extra_forbidden":
            raise ConfigError(
                f"{source}: unknown key {loc!r}; a sweep spec has base, grid, output_dir, "
                "parallel, budget_usd, max_calls."
            ) from None
        shown = "" if isinstance(first.get("input"), dict) else f" ({first.get('input')!r})"
        raise ConfigError(
            f"{source}: {loc}{shown}: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    base = _read_base(spec.base, path.parent, source)
    return build_sweep(
        base,
        spec.grid,
        spec.output_dir,
        spec.parallel,
        source,
        budget_usd=spec.budget_usd,
        max_calls=spec.max_calls,
    )
