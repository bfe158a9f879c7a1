"""A run with oracle `web` serves its own page while it waits, and stops with a resume hint."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from apl.config import config_from_dict
from apl.errors import ConfigError, LabelsPendingError
from apl.loop.web_labelling import labelling_setup, web_labelling
from apl.oracles import ORACLES, JudgeRequest
from apl.store.run_dir import open_run_dir


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_run_serves_its_page_and_a_timeout_says_how_to_resume(tmp_path, caplog):
    port = free_port()
    oracle = {"name": "web", "port": port, "timeout_s": 0.2, "poll_s": 0.02}
    run_dir = open_run_dir(config_from_dict({"oracle": oracle, "output_dir": str(tmp_path)}))
    judge = ORACLES.build("web", {k: v for k, v in oracle.items() if k != "name"}, seed=0)
    caplog.set_level(logging.INFO, logger="apl")
    with pytest.raises(LabelsPendingError) as err:
        with web_labelling(run_dir, judge):
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/healthz", timeout=5).text == "ok"
            link = next(r.getMessage() for r in caplog.records if "/a/" in r.getMessage())
            token = link.split("/a/")[1].split()[0]
            with httpx.Client(base_url=url, timeout=5, follow_redirects=True) as browser:
                page = browser.get(f"/a/{token}").text
                assert "Nothing to label" in page and "The run is working" in page
                judge.begin(1, "label")
                judge.judge_batch([JudgeRequest("p", "a", "b")])  # times out: nobody answers
    message = str(err.value)
    assert f"apl resume {tmp_path}" in message and "apl label import" in message
    assert err.value.exit_code == 3
    with pytest.raises(httpx.ConnectError):  # the page went with the run
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_label_commands_refuse_a_run_judged_by_a_machine(tmp_path):
    run_dir = open_run_dir(config_from_dict({"output_dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match="oracle.name=web"):
        labelling_setup(run_dir)
