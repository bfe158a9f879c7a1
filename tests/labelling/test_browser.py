"""A real run with oracle `web`, labelled by keyboard in headless Chromium, its server SIGKILLed.

`apl run` (tiny model, two rounds of 4 labels, 2 evaluation prompts) waits on its label queue;
`apl label serve` serves the page in its own process; Debian's Chromium, driven by Playwright,
signs in with a link from `apl label add-annotator` and answers every pair with the keys
A / B / T / S / U. Mid-round the server is killed with SIGKILL and started again: the answers given
before are in the ledger, the browser's sign-in still holds, and no answered pair comes back.
The run must finish, train both rounds on exactly the answers given (mapped through the shown
order), and exit 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.oracles.web import decide_verdict

from .runs import query, run_env, start, wait_for, web_run_config

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    # CI installs Chromium and sets APL_REQUIRE_BROWSER=1 (.ci/run), so there it never skips.
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("APL_REQUIRE_BROWSER"),
        reason="needs Debian's Chromium: apt-get install -y chromium chromium-driver (.ci/run)",
    ),
]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_run_is_labelled_in_chromium_across_a_killed_server(
    tmp_path, tiny_model_dir, imdb_sample_texts
):
    from playwright.sync_api import Error as BrowserError
    from playwright.sync_api import sync_playwright

    run_dir, port = tmp_path / "run", free_port()
    base = f"http://127.0.0.1:{port}"
    # undo_window_s: long enough for the test to undo before the run decides the pair.
    config = web_run_config(
        tmp_path, tiny_model_dir, imdb_sample_texts, port=port, timeout_s=300, undo_window_s=2.0
    )
    env = run_env(tmp_path)
    ledger = run_dir / "ledger.sqlite"
    run_log, serve_log = tmp_path / "run.log", tmp_path / "serve.log"
    run = start(["run", str(config)], env, run_log)
    server = None
    browser_home = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        wait_for(
            lambda: query(ledger, "SELECT COUNT(*) FROM label_pairs") not in ([], [(0,)]),
            "round 1's queue",
            procs=[(run, run_log)],
        )
        link = CliRunner().invoke(app, ["label", "add-annotator", str(run_dir), "alice"])
        assert link.exit_code == 0, link.output
        assert link.output.strip().startswith(f"{base}/a/")

        def serve() -> subprocess.Popen:
            proc = start(["label", "serve", str(run_dir)], env, serve_log)

            def up() -> bool:
                try:
                    return httpx.get(f"{base}/healthz", timeout=1).text == "ok"
                except httpx.HTTPError:
                    return False

            wait_for(up, "the labelling server", timeout=60, procs=[(proc, serve_log)])
            return proc

        server = serve()
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                browser_home,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1100, "height": 760},
            )
            page = context.new_page()
            page.goto(link.output.strip())
            assert page.url == f"{base}/label"
            answered: list[tuple[int, str]] = []  # (pair id, key pressed), in order

            def shown_pair() -> int:
                """Wait until the page shows a pair (reloading while nothing is queued)."""
                deadline = time.monotonic() + 180
                while page.locator("input[name=pair]").count() == 0:
                    assert run.poll() is None, run_log.read_text()[-3000:]
                    assert time.monotonic() < deadline, "no pair came"
                    time.sleep(0.2)
                    page.goto(f"{base}/label")
                return int(page.input_value("input[name=pair]"))

            def press(key: str) -> int:
                pair_id = shown_pair()
                with page.expect_navigation():
                    page.keyboard.press(key)
                answered.append((pair_id, key))
                return pair_id

            first, second = press("a"), press("b")
            assert query(ledger, "SELECT pair_id, choice FROM label_answers ORDER BY 1") != []
            assert len(query(ledger, "SELECT * FROM label_answers")) == 2  # committed at once

            os.kill(server.pid, signal.SIGKILL)  # the server dies mid-round
            server.wait()
            with pytest.raises(BrowserError):
                page.reload()
            assert len(query(ledger, "SELECT * FROM label_answers")) == 2  # nothing lost
            server = serve()
            page.goto(f"{base}/label")  # the same browser, still signed in
            third = press("a")
            assert third not in (first, second)  # an answered pair never comes back
            page.keyboard.press("u")  # undo: the same pair is shown again
            page.wait_for_url(f"{base}/label?n=undone")
            assert shown_pair() == third
            answered.pop()
            press("b")
            page.screenshot(path=str(tmp_path / "labelling.png"), full_page=True)
            press("t")  # a tie: the run refills the round from its reserve
            press("s")  # a skip: INVALID with one annotator, refilled the same way
            while run.poll() is None:
                try:
                    shown_pair()
                except AssertionError:
                    if run.poll() is not None:
                        break
                    raise
                progress = page.inner_text("#progress")
                press("a" if len(answered) % 3 else "b")
                assert "Whole budget" in progress
            context.close()
        assert run.wait(timeout=120) == 0, run_log.read_text()[-3000:]
    finally:
        for proc in (run, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(browser_home, ignore_errors=True)
    if os.environ.get("APL_LABELLING_SCREENSHOT"):
        shutil.copy(tmp_path / "labelling.png", os.environ["APL_LABELLING_SCREENSHOT"])

    # The ledger: every answer given, mapped through the shown order, trained on in both rounds.
    pairs = {
        pid: (order, verdict, purpose)
        for pid, order, verdict, purpose in query(
            ledger, "SELECT id, shown_order, verdict, purpose FROM label_pairs"
        )
    }
    assert len({pid for pid, _ in answered}) == len(answered)  # each pair shown once only
    for pair_id, key in answered:
        order, verdict, _ = pairs[pair_id]
        left = "A" if order == "AB" else "B"
        expected = {"a": left, "b": "B" if left == "A" else "A", "t": "tie", "s": "invalid"}[key]
        assert verdict == expected, (pair_id, key, order)
    assert all(v is not None for _, v, _ in pairs.values())
    (answer_rows,) = [query(ledger, "SELECT COUNT(*), COUNT(seconds) FROM label_answers")]
    assert answer_rows[0] == (len(answered), len(answered))  # time per label for each
    for pid, (_, verdict, _) in pairs.items():
        choices = [
            c for (c,) in query(ledger, "SELECT choice FROM label_answers WHERE pair_id = ?", pid)
        ]
        assert decide_verdict(choices, "majority").value == verdict
    # The loop holds the same verdicts for the same texts, and trained on the A/B ones.
    held = query(
        ledger,
        "SELECT v.verdict, q.verdict FROM verdicts v JOIN candidates c ON c.id = v.candidate_id "
        "JOIN label_pairs q ON q.prompt = c.prompt_text AND q.completion_a = c.a_text "
        "AND q.completion_b = c.b_text",
    )
    assert len(held) == sum(p == "label" for _, _, p in pairs.values()) and held
    assert all(loop == people for loop, people in held)
    phases = dict(query(ledger, "SELECT round, phase FROM rounds"))
    assert phases == {1: "evaluated", 2: "evaluated"}
    trained = query(ledger, "SELECT round FROM metrics WHERE key = 'train/loss' ORDER BY round")
    assert trained == [(1,), (2,)]
    usable = query(
        ledger,
        "SELECT c.round, COUNT(*) FROM verdicts v JOIN candidates c ON c.id = v.candidate_id "
        "WHERE v.verdict IN ('A', 'B') GROUP BY c.round",
    )
    assert usable == [(1, 4), (2, 4)]
    assert (run_dir / "final_model").is_dir()
    status = CliRunner().invoke(app, ["status", str(run_dir)], env={"COLUMNS": "200"})
    assert status.exit_code == 0 and "alice" in status.output  # who labelled, per annotator
