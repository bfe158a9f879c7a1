"""Run a Python writer in a real process, SIGKILL it after a delay, return what it acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def run_and_kill(script: str, args: list[str], delay_s: float, stderr_path: Path) -> list[str]:
    """Start `python -c script *args`, wait for its "ready" line, sleep, SIGKILL; its whole lines.

    stdout is read through the one buffered file that readline() used, so nothing read ahead is
    lost. Only whole lines count as acknowledgements: under PYTHONUNBUFFERED=1 print() writes
    each argument separately, so a kill can leave a partial last line that acknowledged nothing.
    """
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        first = proc.stdout.readline().strip()
        if first == "ready":
            time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        out = proc.stdout.read()
        proc.stdout.close()
    assert first == "ready" and proc.returncode == -signal.SIGKILL, stderr_path.read_text()
    return out.split("\n")[:-1]
