"""`apl sweep`: spec expansion and errors, worker slots, run states, and one real 2-run sweep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from judge_cache import seed_fitted_judge
from reports.synthetic import make_run
from typer.testing import CliRunner

from apl.cli import app
from apl.errors import ConfigError, RunStoreError
from apl.store.run_dir import load_run_dir, open_run_dir
from apl.sweep import build_sweep, load_sweep_spec, plan_sweep, run_state
from apl.sweep import runner as sweep_runner


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_expands_to_named_validated_runs(tmp_path):
    (tmp_path / "base.yaml").write_text(
        yaml.safe_dump({"loop": {"query_size": 8, "pool_size": 16, "label_budget": 16}})
    )
    spec_path = write_spec(
        tmp_path / "sweep.yaml",
        {
            "base": "base.yaml",  # relative to the spec file
            "grid": {
                "acquisition.name": ["random", "certainty"],
                "seed": [0, 1],
                "dpo.beta": [0.1],
            },
            "output_dir": str(tmp_path / "root"),
            "parallel": 3,
            "budget_usd": 25.5,
            "max_calls": 1000,
        },
    )
    spec = load_sweep_spec(spec_path)
    assert (spec.parallel, spec.budget_usd, spec.max_calls) == (3, 25.5, 1000)
    assert [r.name for r in spec.runs] == [
        "random-seed0-dpo.beta=0.1",
        "random-seed1-dpo.beta=0.1",
        "certainty-seed0-dpo.beta=0.1",
        "certainty-seed1-dpo.beta=0.1",
    ]
    run = spec.runs[3]
    assert run.run_dir == tmp_path / "root" / "certainty-seed1-dpo.beta=0.1"
    assert (run.config.seed, run.config.dpo.beta, run.config.acquisition.name) == (
        1,
        0.1,
        "certainty",
    )
    assert run.config.loop.query_size == 8  # from the base file


def test_runs_without_acquisition_in_the_grid_use_the_base_one(tmp_path):
    spec = build_sweep({"acquisition": {"name": "hybrid"}}, {"seed": [3]}, tmp_path)
    assert [r.name for r in spec.runs] == ["hybrid-seed3"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grid": {"seed": [0]}}, r"output_dir: Field required"),
        ({"grid": {"seed": []}, "output_dir": "x"}, r"grid key 'seed' has an empty list"),
        ({"grid": {"output_dir": ["a"]}, "output_dir": "x"}, r"output_dir cannot be a grid key"),
        ({"grdi": {}, "output_dir": "x"}, r"unknown key 'grdi'; a sweep spec has base, grid"),
        (
            {"grid": {"loop.query_sise": [8]}, "output_dir": "x"},
            r"unknown option 'loop.query_sise'",
        ),
        (
            {"grid": {"dpo.beta": [-1]}, "output_dir": "x"},
            r"grid point \{'dpo.beta': -1\}\): dpo.beta \(-1\)",
        ),
        ({"base": "missing.yaml", "output_dir": "x"}, r"base config 'missing.yaml' not found"),
        ({"grid": {"seed": [0]}, "output_dir": "x", "parallel": 0}, r"parallel \(0\)"),
        ({"output_dir": "x", "budget_usd": -1}, r"budget_usd \(-1\): .*greater than or equal"),
        ({"output_dir": "x", "max_calls": "many"}, r"max_calls \('many'\)"),
        (
            {"grid": {"model.model_name_or_path": ["a/b", "a_b"]}, "output_dir": "x"},
            r"both map to run dir",
        ),
    ],
)
def test_bad_specs_fail_with_one_line(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_sweep_spec(write_spec(tmp_path / "sweep.yaml", spec))
    assert "\n" not in str(err.value) and str(tmp_path / "sweep.yaml") in str(err.value)


def test_unknown_registry_name_fails_before_any_run(tmp_path):
    spec = build_sweep({}, {"acquisition.name": ["random", "entrpy"]}, tmp_path, source="s.yaml")
    with pytest.raises(
        ConfigError, match=r"s.yaml, run entrpy-seed0: Unknown acquisition 'entrpy'. Available"
    ):
        plan_sweep(spec)
    assert not any(tmp_path.iterdir())  # nothing written


def test_worker_slots_share_cores_or_take_one_gpu_each(tmp_path, monkeypatch):
    spec = build_sweep({"model": {"device": "cpu"}}, {"seed": [0, 1, 2, 3]}, tmp_path)
    monkeypatch.setattr(sweep_runner, "available_cores", lambda: 8)
    assert (
        sweep_runner.worker_slots(spec, 2, None, 4)
        == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2
    )
    assert (
        sweep_runner.worker_slots(spec, 8, None, 3)
        == [{"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}] * 3
    )
    assert sweep_runner.worker_slots(spec, 2, 1, 4)[0]["OMP_NUM_THREADS"] == "1"
    monkeypatch.setattr(sweep_runner, "_memory_bytes", lambda: 5 * 1024**3)  # room for 2 runs
    assert len(sweep_runner.worker_slots(spec, None, None, 4)) == 2
    # A real multi-GPU box is not available here; the device list is faked.
    monkeypatch.setattr(sweep_runner, "visible_gpus", lambda spec: ["3", "5"])
    slots = sweep_runner.worker_slots(spec, None, None, 4)
    assert slots == [{"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "5"}]


def test_run_states_come_from_the_ledger(tmp_path):
    spec = build_sweep(
        {
            "model": {"model_name_or_path": "synthetic-model"},
            "loop": {"label_budget": 128, "query_size": 64, "pool_size": 64},
        },
        {"seed": [0, 1, 2, 3]},
        tmp_path,
    )
    _, complete, partial, no_model = spec.runs
    make_run(complete.run_dir, acquisition="certainty", seed=1, win_rates={1: 0.5, 2: 0.6})
    make_run(
        partial.run_dir,
        acquisition="certainty",
        seed=2,
        num_rounds=2,
        win_rates={1: 0.5},
        complete=False,
    )
    make_run(
        no_model.run_dir,
        acquisition="certainty",
        seed=3,
        win_rates={1: 0.5, 2: 0.6},
        complete=False,
    )
    assert [run_state(r) for r in spec.runs] == ["new", "complete", "incomplete", "incomplete"]
    other = build_sweep(
        {"model": {"model_name_or_path": "synthetic-model"}, "dpo": {"beta": 0.5}},
        {"seed": [1]},
        tmp_path,
    )
    with pytest.raises(
        RunStoreError, match=r"belongs to a different config: loop.label_budget is 128 there"
    ):
        run_state(other.runs[0])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, fitted_judge_cache):
    """One APL_CACHE_DIR for this module: its own label cache, the session's fitted judge."""
    return seed_fitted_judge(tmp_path_factory.mktemp("apl-cache"), fitted_judge_cache)


def sweep_spec(path: Path, model_dir: Path, root: Path, **grid) -> Path:
    return write_spec(
        path,
        {
            "base": {
                "model": {"model_name_or_path": str(model_dir), "bf16": False},
                "generation": {"batch_size": 32},
                "loop": {"label_budget": 8, "query_size": 8, "pool_size": 16},
                "dpo": {
                    "num_train_epochs": 2,
                    "learning_rate": 1e-3,
                    "per_device_train_batch_size": 8,
                },
                "evaluation": {"num_prompts": 8},
            },
            "grid": grid or {"acquisition.name": ["random", "certainty"], "seed": [0]},
            "output_dir": str(root),
        },
    )


def test_a_failed_run_is_reported_and_the_sweep_exits_non_zero(tmp_path, monkeypatch, cache_dir):
    monkeypatch.setenv("APL_CACHE_DIR", str(cache_dir))
    # A directory that passes the up-front check (it has a config.json) but fails to load in
    # the child: a missing directory is refused before any run starts (test_bad_input.py).
    broken = tmp_path / "no-such-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    spec = sweep_spec(tmp_path / "s.yaml", broken, tmp_path / "root", seed=[0])
    result = CliRunner().invoke(app, ["sweep", str(spec)])
    assert result.exit_code == 1, result.output
    assert "FAILED (exit 2)" in result.output and "1 of 1 runs failed" in result.output
    log = (tmp_path / "root" / "logs" / "certainty-seed0.log").read_text()
    assert "no-such-model" in log


@pytest.mark.slow
def test_real_sweep_runs_resumes_skips_and_reports(
    tmp_path, tiny_model_dir, monkeypatch, cache_dir
):
    """2 strategies x 1 seed on the tiny model; the certainty run is left incomplete beforehand."""
    monkeypatch.setenv("APL_CACHE_DIR", str(cache_dir))
    root = tmp_path / "root"
    spec_path = sweep_spec(tmp_path / "sweep.yaml", tiny_model_dir, root)
    spec = load_sweep_spec(spec_path)
    certainty_run = spec.runs[1]
    open_run_dir(certainty_run.config)  # as if `apl run` was killed right after creating it
    runner = CliRunner()
    dry = runner.invoke(app, ["sweep", str(spec_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        "random-seed0" in dry.output and "incomplete" in dry.output and not (root / "logs").exists()
    )

    first = runner.invoke(app, ["sweep", str(spec_path), "--parallel", "2"])
    assert first.exit_code == 0, first.output
    logs = {r.name: root / "logs" / f"{r.name}.log" for r in spec.runs}
    assert " -m apl run --config " in logs["random-seed0"].read_text()
    assert f" -m apl resume {certainty_run.run_dir}" in logs["certainty-seed0"].read_text()
    threads = max(1, sweep_runner.available_cores() // 2)  # the cores shared by 2 runs
    assert f"OMP_NUM_THREADS': '{threads}'" in logs["random-seed0"].read_text()
    for run in spec.runs:
        assert run_state(run) == "complete"
        with load_run_dir(run.run_dir).open_ledger() as ledger:
            assert len(ledger.labelled()) == 8
    assert len(list((root / "baselines").iterdir())) == 1  # one seed: one shared baseline

    stamps = {
        p: (p.stat().st_mtime_ns, p.stat().st_size)
        for p in [*logs.values(), *root.rglob("ledger.sqlite")]
    }
    again = runner.invoke(app, ["sweep", str(spec_path)])
    assert again.exit_code == 0, again.output
    assert len(re.findall(r"│ skip\s+│ ok", again.output)) == 2
    assert {
        p: (p.stat().st_mtime_ns, p.stat().st_size) for p in stamps
    } == stamps  # nothing started

    report = runner.invoke(app, ["report", str(root), "--output", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| labels | random | certainty |" in text
    assert (
        "| certainty | 1 | 8 | 0 (-) | 0 | 0 | 8 |" in text
    )  # round 1 is a cold start: all at 0.5
    assert (tmp_path / "report" / "win_rate.png").stat().st_size > 1000


def test_a_sweep_over_chat_options_validates_every_run(tmp_path):
    """Chat task options and stop strings are ordinary grid keys, checked before any run."""
    pool = tmp_path / "chats.jsonl"
    rows = [f'{{"messages": [{{"role": "user", "content": "Hi {i}"}}]}}\n' for i in range(40)]
    pool.write_text("".join(rows))  # enough rows for both splits
    base = {"task": {"name": "custom", "path": str(pool), "chat_template": True}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    grid = {"task.system_prompt": ["Be brief.", "Be kind."], "generation.stop": [["\nUser:"]]}
    spec_dict = {"base": "base.yaml", "grid": grid, "output_dir": str(tmp_path / "root")}
    spec = load_sweep_spec(write_spec(tmp_path / "sweep.yaml", spec_dict))
    assert [r.config.task.kwargs["system_prompt"] for r in spec.runs] == ["Be brief.", "Be kind."]
    assert all(r.config.generation.stop == ["\nUser:"] for r in spec.runs)
    assert [p.state for p in plan_sweep(spec)] == ["new", "new"]  # task options validated
    bad = build_sweep(base, {"task.chat_templates": [True]}, tmp_path / "bad", source="s.yaml")
    with pytest.raises(ConfigError, match="chat_templates"):
        plan_sweep(bad)
