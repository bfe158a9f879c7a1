"""Bad input through the real CLI: one line on stderr, exit 2, no traceback, nothing written.

Every case runs `python -m apl ...` as a subprocess in its own fresh working directory (with
APL_CACHE_DIR inside it), all cases in parallel. Each directory is snapshotted before and after
(every path, size, mtime and content hash), so a run directory, a config.yaml, a ledger, a
judgement cache or a rewritten file left behind fails the case.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from apl.config import dump_config, load_config

PASTED_KEY = "sk-proj-4fQ9xZ2mN7pL0aB3cD5eF8gH1jK6"
OLD_RUN = ["output_dir=oldrun", "oracle.name=openai_judge", "oracle.api_key_env=null"]

# (id, argv after `apl`, a fragment the one error line must hold)
CASES: list[tuple[str, list[str], str]] = [
    # component options: wrong types, required options, constructor checks
    (
        "oracle-budget-not-a-number",
        ["run", "oracle.name=openai_judge", "oracle.api_key_env=null", "oracle.budget_usd=abc"],
        "oracle.budget_usd ('abc') must be float | None",
    ),
    (
        "acquisition-num-samples-word",
        ["run", "acquisition.name=entropy", "acquisition.num_samples=two"],
        "acquisition.num_samples ('two') must be int",
    ),
    ("task-option-list", ["run", "task.min_prompt_tokens=[1]"], "task.min_prompt_tokens ([1])"),
    (
        "acquisition-bool-not-bool",
        ["run", "acquisition.length_normalize=maybe"],
        "acquisition.length_normalize ('maybe') must be bool",
    ),
    (
        "acquisition-int-given-true",
        ["run", "acquisition.name=entropy", "acquisition.num_samples=true"],
        "acquisition.num_samples (True) must be int",
    ),
    (
        "acquisition-literal",
        ["run", "acquisition.direction=sideways"],
        "acquisition.direction ('sideways') must be 'most' or 'least'",
    ),
    (
        "oracle-constructor-check",
        ["run", "oracle.noise_temperature=-1"],
        "oracle.noise_temperature (-1) must be a number >= 0",
    ),
    ("custom-task-without-path", ["run", "task.name=custom"], "needs option 'path'"),
    ("tldr-with-imdb-judge", ["run", "task.name=tldr"], "imdb_judge scores sentiment"),
    (
        "tldr-offline-without-path",
        ["run", "task.name=tldr", "oracle.name=openai_judge", "oracle.api_key_env=null"],
        "task.path is not set and the hub is offline",
    ),
    # API keys
    (
        "api-key-pasted-into-api-key-env",
        ["run", "oracle.name=openai_judge", f"oracle.api_key_env={PASTED_KEY}"],
        "oracle.api_key_env must be the NAME of an environment variable",
    ),
    (
        "api-key-env-unset",
        ["run", "oracle.name=openai_judge", "oracle.api_key_env=APL_NO_SUCH_KEY_VAR"],
        "Environment variable APL_NO_SUCH_KEY_VAR is not set",
    ),
    # custom prompt files, checked before any model loads
    ("custom-file-empty", ["run", "task.name=custom", "task.path=empty.jsonl"], "is empty"),
    ("custom-csv-header-only", ["run", "task.name=custom", "task.path=header.csv"], "is empty"),
    ("custom-file-missing", ["run", "task.name=custom", "task.path=nope.jsonl"], "does not exist"),
    (
        "custom-file-no-prompt-column",
        ["run", "task.name=custom", "task.path=text.jsonl"],
        "has no column 'prompt' (`task.prompt_column`); available: text",
    ),
    # config names, values and files
    ("section-typo", ["run", "acquisiton.name=entropy"], "unknown option 'acquisiton'"),
    ("component-option-typo", ["run", "acquisition.nme=entropy"], "has no option 'nme'"),
    ("unknown-acquisition", ["run", "acquisition.name=bold"], "Unknown acquisition 'bold'"),
    ("negative-size", ["run", "loop.query_size=-1"], "loop.query_size (-1)"),
    ("query-over-pool", ["run", "loop.query_size=600"], "query_size (600) > pool_size (512)"),
    ("bad-literal", ["run", "model.device=tpu"], "model.device ('tpu')"),
    (
        "online-with-validation",
        ["config", "dpo.mode=online", "dpo.validation_fraction=0.1"],
        "needs epochs",
    ),
    ("override-without-equals", ["run", "novalue"], "has no '='"),
    ("bad-yaml", ["run", "bad.yaml"], "is not valid YAML at line"),
    ("yaml-list", ["run", "list.yaml"], "must hold a mapping of sections, not list"),
    ("config-not-text", ["run", "binary.yaml"], "cannot be read (not UTF-8 text)"),
    ("config-missing", ["config", "--config", "missing.yaml"], "does not exist"),
    ("config-is-a-directory", ["run", "--config", "notarun"], "is a directory"),
    ("two-configs", ["run", "list.yaml", "--config", "bad.yaml"], "two configs given"),
    ("model-path-missing", ["run", "model.model_name_or_path=./no-model"], "does not exist"),
    # output directories
    ("output-dir-is-a-file", ["run", "output_dir=afile"], "is a file, not a directory"),
    ("output-dir-under-a-file", ["run", "output_dir=afile/run"], "is a file, not a directory"),
    ("output-dir-foreign", ["run", "output_dir=notarun"], "is not empty and is not an apl run"),
    ("rerun-other-config", ["run", *OLD_RUN, "seed=9"], "seed is 0 there, 9 here"),
    # resume, status, export, report
    ("resume-not-a-run", ["resume", "notarun"], "is not an apl run directory"),
    ("resume-forbidden-key", ["resume", "oldrun", "dpo.beta=0.5"], "cannot change 'dpo.beta'"),
    (
        "resume-bad-typed-limit",
        ["resume", "oldrun", "oracle.max_calls=abc"],
        "oracle.max_calls ('abc') must be int | None",
    ),
    ("status-missing-dir", ["status", "nowhere"], "is not an apl run directory"),
    ("export-missing-run", ["export", "nowhere"], "is not an apl run directory"),
    ("report-of-nothing", ["report", "notarun"], "holds no apl runs"),
    ("report-without-runs", ["report"], "Missing argument 'runs'"),
    ("report-output-is-a-file", ["report", "notarun", "-o", "afile"], "afile is a file"),
    # sweeps
    ("sweep-spec-missing", ["sweep", "missing.yaml"], "does not exist"),
    ("sweep-empty-grid-list", ["sweep", "sweep_empty.yaml"], "has an empty list"),
    ("sweep-unknown-key", ["sweep", "sweep_key.yaml"], "unknown key 'bogus'"),
    ("sweep-bad-model", ["sweep", "sweep_model.yaml"], "does not exist"),
    ("sweep-parallel-zero", ["sweep", "sweep_key.yaml", "--parallel", "0"], "'--parallel'"),
    # judges
    ("judge-label-no-options", ["judge", "label"], "Missing option '--pairs'"),
    (
        "judge-label-missing-file",
        ["judge", "label", "--pairs", "nope.jsonl", "--output", "out.jsonl"],
        "--pairs file nope.jsonl does not exist",
    ),
    (
        "judge-label-option-type",
        ["judge", "label", "--pairs", "pairs.jsonl", "--output", "o.jsonl"]
        + ["-o", "noise_temperature=abc"],
        "oracle.noise_temperature ('abc') must be float",
    ),
    (
        "judge-label-output-dir-missing",
        ["judge", "label", "--pairs", "pairs.jsonl", "--output", "nodir/o.jsonl"],
        "directory nodir does not exist",
    ),
    ("judge-num-pairs-word", ["judge", "consistency", "--num-pairs", "abc"], "'--num-pairs'"),
    (
        "judge-temperature-unsupported",
        ["judge", "consistency", "--judge", "human", "--temperature", "0.5"],
        "has no temperature option",
    ),
    # pretrain
    ("pretrain-negative-steps", ["pretrain", "--max-steps", "-5"], "--max-steps (-5)"),
    ("pretrain-heads", ["pretrain", "--n-embd", "30", "--n-head", "4"], "not divisible"),
    ("pretrain-output-is-a-file", ["pretrain", "--output-dir", "afile"], "is a file"),
    # the command line itself
    ("unknown-command", ["bogus"], "No such command 'bogus'"),
    ("unknown-flag", ["run", "--bogus"], "No such option: --bogus"),
]


def _write_inputs(cwd: Path) -> None:
    """The files the cases point at (each case gets its own copy)."""
    (cwd / "bad.yaml").write_text("loop: [\n")
    (cwd / "list.yaml").write_text("- loop\n- dpo\n")
    (cwd / "binary.yaml").write_bytes(b"\xff\xfe\x00\x81 not text")
    (cwd / "empty.jsonl").write_text("")
    (cwd / "header.csv").write_text("prompt\n")
    (cwd / "text.jsonl").write_text('{"text": "a prompt"}\n')
    (cwd / "pairs.jsonl").write_text(json.dumps({"prompt": "p", "a": "x", "b": "y"}) + "\n")
    (cwd / "afile").write_text("not a directory\n")
    (cwd / "notarun").mkdir()
    (cwd / "notarun" / "notes.txt").write_text("someone else's directory\n")
    (cwd / "sweep_empty.yaml").write_text("grid: {seed: []}\noutput_dir: sweep\n")
    (cwd / "sweep_key.yaml").write_text("grid: {seed: [1]}\noutput_dir: sweep\nbogus: 1\n")
    spec = {
        "base": {"model": {"model_name_or_path": "./no-model"}},
        "grid": {"seed": [0, 1]},
        "output_dir": "sweep",
    }
    (cwd / "sweep_model.yaml").write_text(yaml.safe_dump(spec))
    # A run directory as `apl run` leaves it right after starting (its resolved config.yaml).
    (cwd / "oldrun").mkdir()
    (cwd / "oldrun" / "config.yaml").write_text(dump_config(load_config(None, OLD_RUN)))


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under `root` with its size, mtime and content hash ('' for directories)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            stat = path.stat()
            digest = "" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


@dataclass
class Outcome:
    """What one bad input produced."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    changed: list[str]


def _run_case(base: Path, case_id: str, argv: list[str]) -> Outcome:
    cwd = base / case_id
    cwd.mkdir()
    _write_inputs(cwd)
    before = _snapshot(cwd)
    env = dict(os.environ)
    env.update(APL_CACHE_DIR=str(cwd / ".apl-cache"), HF_HUB_OFFLINE="1", COLUMNS="200")
    env.pop("APL_NO_SUCH_KEY_VAR", None)
    env.pop("APL_PROMPT_CACHE_DIR", None)  # cut prompts too would land in the snapshot
    env.pop("FORCE_COLOR", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "apl", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    after = _snapshot(cwd)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return Outcome(proc.returncode, proc.stdout, proc.stderr, seconds, changed)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case, run in parallel (each is a short-lived process)."""
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        futures = {cid: pool.submit(_run_case, base, cid, argv) for cid, argv, _ in CASES}
        return {cid: future.result() for cid, future in futures.items()}


def test_the_walk_covers_at_least_25_inputs():
    assert len(CASES) >= 25
    assert len({cid for cid, _, _ in CASES}) == len(CASES)


@pytest.mark.slow  # ~60 short processes: about 30 s of CPU on 2 cores, in parallel
@pytest.mark.parametrize(("case_id", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(outcomes, case_id, argv, fragment):
    out = outcomes[case_id]
    where = f"apl {' '.join(argv)}\nstdout: {out.stdout!r}\nstderr: {out.stderr!r}"
    assert "Traceback" not in out.stdout + out.stderr, where
    assert out.returncode == 2, where
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    assert fragment in lines[0], where
    assert out.stdout == "", where
    assert out.changed == [], f"{where}\nwritten or changed: {out.changed}"


def test_a_pasted_key_is_never_echoed(outcomes):
    out = outcomes["api-key-pasted-into-api-key-env"]
    assert PASTED_KEY not in out.stdout + out.stderr
    assert "PASTED" not in out.stderr and PASTED_KEY[3:12] not in out.stderr


def _imported_modules(argv: list[str], cwd: Path) -> tuple[int, set[str]]:
    """Exit status and every module `python -X importtime -m apl argv` imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "apl", *argv],
        cwd=cwd,
        env=dict(os.environ, APL_CACHE_DIR=str(cwd / ".apl-cache")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return proc.returncode, modules


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "acquisition.name=entropy", "acquisition.num_samples=two"],
        ["run", "task.name=custom", "task.path=missing.jsonl"],
        ["resume", "nowhere"],
        ["judge", "label", "--pairs", "missing.jsonl", "--output", "o.jsonl"],
        ["pretrain", "--max-steps", "-5"],
    ],
    ids=["help", "run-bad-option", "run-missing-pool", "resume", "judge-label", "pretrain"],
)
def test_help_and_bad_input_never_import_torch(tmp_path, argv):
    """The paths a mistyped command takes stay light: torch alone takes seconds to import."""
    code, modules = _imported_modules(argv, tmp_path)
    assert code in (0, 2)
    assert "apl.cli" in modules
    heavy = {"torch", "transformers", "datasets", "openai", "sklearn"} & modules
    assert not heavy, heavy
