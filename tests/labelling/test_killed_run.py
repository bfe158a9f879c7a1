"""A waiting `web` run SIGKILLed after some answers came in: `apl resume` uses them, asks none again.

The answers come in as a Label Studio export (https://labelstud.io/guide/task_format) imported
while the run waits; the run decides two pairs, is killed, the rest are imported, and
`apl resume RUN oracle.timeout_s=0` trains round 1 on all four and stops cleanly (exit 3) at
round 1's evaluation, which no one has answered yet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from apl.cli import app

from .runs import query, run_env, start, wait_for, web_run_config

pytestmark = pytest.mark.slow


def ls_export(tasks: list[dict], answered: int) -> list[dict]:
    """Label Studio's JSON export of the tasks, the first `answered` picked 'left' by user 7."""
    return [
        {
            "id": i,
            "data": task["data"],
            "annotations": [
                {
                    "id": 100 + i,
                    "completed_by": 7,
                    "was_cancelled": False,
                    "lead_time": 2.5,
                    "result": [
                        {
                            "from_name": "pw",
                            "to_name": "text1,text2",
                            "type": "pairwise",
                            "value": {"selected": "left"},
                        }
                    ],
                }
            ]
            if i <= answered
            else [],
            "predictions": [],
        }
        for i, task in enumerate(tasks, start=1)
    ]


def test_a_killed_run_loses_no_answer_and_resume_goes_on(
    tmp_path, tiny_model_dir, imdb_sample_texts
):
    config = web_run_config(tmp_path, tiny_model_dir, imdb_sample_texts, undo_window_s=0.0)
    env, run_dir = run_env(tmp_path), tmp_path / "run"
    ledger, log = run_dir / "ledger.sqlite", tmp_path / "run.log"
    run = start(["run", str(config)], env, log)  # timeout_s null: it waits for ever
    try:
        wait_for(
            lambda: query(ledger, "SELECT COUNT(*) FROM label_pairs") == [(4,)],
            "round 1's four pairs",
            procs=[(run, log)],
        )
        cli = CliRunner()
        assert (
            cli.invoke(app, ["label", "export", str(run_dir), "-f", "label-studio"]).exit_code == 0
        )
        tasks = json.loads((run_dir / "label-label-studio" / "tasks.json").read_text())
        first = tmp_path / "first.json"
        first.write_text(json.dumps(ls_export(tasks, answered=2)))
        assert cli.invoke(app, ["label", "import", str(run_dir), str(first)]).exit_code == 0
        wait_for(
            lambda: query(ledger, "SELECT COUNT(verdict) FROM label_pairs") == [(2,)],
            "the run deciding the two answered pairs",
            procs=[(run, log)],
        )
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert query(ledger, "SELECT COUNT(*) FROM verdicts") == [(0,)]  # the batch never returned
    everything = tmp_path / "all.json"
    everything.write_text(json.dumps(ls_export(tasks, answered=4)))
    imported = CliRunner().invoke(app, ["label", "import", str(run_dir), str(everything)])
    assert "Imported 2 answers for 4 pairs (2 already stored)" in imported.output

    resumed = subprocess.run(
        [sys.executable, "-m", "apl", "resume", str(run_dir), "oracle.timeout_s=0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 3, resumed.stderr[-3000:]
    last = resumed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Round 1 evaluation: 2 of 2 queued pairs still need answers")
    assert f"apl resume {run_dir}" in last
    # Round 1 trained on the four answers, each mapped through its shown order; none re-asked.
    assert dict(query(ledger, "SELECT round, phase FROM rounds")) == {1: "trained"}
    assert query(ledger, "SELECT COUNT(*) FROM label_pairs WHERE purpose = 'label'") == [(4,)]
    held = query(
        ledger,
        "SELECT v.verdict, q.shown_order FROM verdicts v JOIN candidates c "
        "ON c.id = v.candidate_id JOIN label_pairs q ON q.prompt = c.prompt_text "
        "AND q.completion_a = c.a_text AND q.completion_b = c.b_text",
    )
    assert len(held) == 4  # every answer was 'left': A when shown AB, B when shown BA
    assert all(verdict == ("A" if order == "AB" else "B") for verdict, order in held)
    assert query(ledger, "SELECT COUNT(*) FROM metrics WHERE round = 1 AND key = 'train/loss'") == [
        (1,)
    ]
