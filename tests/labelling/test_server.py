"""The page on a real uvicorn server on 127.0.0.1: serving, a port in use, loopback by default."""

from __future__ import annotations

import socket

import httpx
import pytest

from apl.errors import ConfigError
from apl.labelling.app import PageSettings, create_app
from apl.labelling.server import bind, is_loopback, serve_in_thread
from apl.store.label_queue import LabelQueue
from apl.store.ledger import Ledger


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_page_is_served_over_real_http_and_stops(tmp_path):
    Ledger(tmp_path / "ledger.sqlite").close()
    with LabelQueue(tmp_path / "ledger.sqlite") as queue:
        app = create_app(queue, PageSettings("run", "Which?", 8, 1.0, "apl resume run"))
        port = free_port()
        server = serve_in_thread(app, "127.0.0.1", port)
        try:
            assert server.url == f"http://127.0.0.1:{port}"
            assert httpx.get(f"{server.url}/healthz", timeout=5).text == "ok"
            page = httpx.get(f"{server.url}/label", timeout=5)
            assert page.status_code == 401
            with pytest.raises(ConfigError, match="--port"):
                serve_in_thread(app, "127.0.0.1", port)  # in use: one clear error
        finally:
            server.stop()
        assert not server.thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=2)


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("example.org", False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_network_address_is_warned_about(caplog):
    sock = bind("0.0.0.0", 0)
    sock.close()
    assert "reachable from the network" in caplog.text
