"""Progress a person reads: rich bars on a terminal, plain log lines when stderr is not one.

Both through real processes on the tiny model: `apl run` with its stderr on a pseudo-terminal
(bars drawn), and `apl sweep` with stderr on a pipe, whose child `apl run` writes into a log file
(neither may hold a bar, a spinner frame or a carriage-return redraw).
"""

from __future__ import annotations

import errno
import os
import pty
import re
import subprocess
import sys

import pytest
import yaml

from .conftest import run_config, subprocess_env, write_config

# What rich draws for bars and spinners, and how it redraws them in place. The summary table
# printed at the end (stdout, in the sweep's run log) uses "━" too, always beside box corners.
BAR_CHARS = "━╸╺"
TABLE_CHARS = set("┏┓┗┛┡┩└┘┃│┳┻╇┼")
SPINNER_CHARS = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PLAIN_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def tiny_run(model_dir, output_dir):
    """Two rounds of 4 labels: the smallest run with more than one round."""
    return run_config(
        model_dir,
        output_dir,
        loop={"label_budget": 8, "query_size": 4, "pool_size": 8},
        dpo={"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 4},
        evaluation={"num_prompts": 4},
    )


def frames_in(text: str) -> list[str]:
    """The bar, spinner, redraw and cursor-control characters in `text` (tables excepted)."""
    lines = [line for line in text.splitlines() if not set(line) & TABLE_CHARS]
    found = [c for c in BAR_CHARS + SPINNER_CHARS if any(c in line for line in lines)]
    if "\r" in text.replace("\r\n", "\n"):
        found.append("carriage return")
    if "\x1b[" in text:
        found.append("ANSI escape")
    return found


def run_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `command` with stderr on a pseudo-terminal; return (exit status, what it showed)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError as err:  # EIO: the child closed the terminal
            if err.errno != errno.EIO:
                raise
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_terminal_gets_rich_bars(tmp_path, tiny_model_dir, judge_cache_dir):
    config = write_config(tmp_path / "run.yaml", tiny_run(tiny_model_dir, tmp_path / "run"))
    env = subprocess_env(judge_cache_dir) | {"COLUMNS": "120", "LINES": "40"}
    env.pop("FORCE_COLOR", None)
    code, shown = run_on_a_terminal(
        [sys.executable, "-m", "apl", "run", "--config", str(config)], env
    )
    assert code == 0, shown[-2000:]
    assert "━" in shown and "round 2: done" in shown, shown[-2000:]  # the bar over rounds
    assert "\r" in shown or "\x1b[" in shown  # redrawn in place
    assert frames_in(shown)  # what the plain-output test looks for is what a terminal gets


@pytest.mark.slow
def test_a_pipe_and_a_log_file_get_plain_lines_only(tmp_path, tiny_model_dir, judge_cache_dir):
    """`apl sweep` with stderr on a pipe; its child `apl run` writes into a log file."""
    base = tiny_run(tiny_model_dir, tmp_path / "unused")
    base.pop("output_dir")
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        yaml.safe_dump({"base": base, "grid": {"seed": [5]}, "output_dir": str(tmp_path / "sw")})
    )
    env = subprocess_env(judge_cache_dir)
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "apl", "sweep", str(spec), "--parallel", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    child_log = (tmp_path / "sw" / "logs" / "certainty-seed5.log").read_text()
    for name, text in (("sweep stderr", proc.stderr), ("run log", child_log)):
        assert frames_in(text) == [], f"{name} holds {frames_in(text)}:\n{text[-2000:]}"
    assert "Sweep: 1/1 runs finished (certainty-seed5 ok)" in proc.stderr
    for round in (1, 2):
        assert f"Round {round}/2: labelling" in child_log
        assert f"Round {round}/2: done" in child_log
    log_lines = [line for line in child_log.splitlines() if "Round " in line]
    assert log_lines and all(PLAIN_LINE.match(line) for line in log_lines), log_lines
