"""Run the labelling app on uvicorn: in the foreground (`apl label serve`) or on a thread of a run.

The socket is bound here, before uvicorn starts, so a port in use is one clear error instead
of a server that logs and quits. Anything but a loopback host is logged as a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from apl.errors import ConfigError

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or ConfigError naming the option to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"Cannot serve the labelling page on {host}:{port} ({err.strerror}); pass another "
            "--port (or oracle.port), or stop what is using it."
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    if not is_loopback(host):
        logger.warning(
            "The labelling page listens on %s, reachable from the network: serve it behind a "
            "TLS reverse proxy (docs/LABELLING.md).",
            host,
        )
    return sock


def _server(app, sock: socket.socket) -> uvicorn.Server:
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(config)


def serve(app, host: str, port: int) -> None:
    """Serve `app` in the foreground until interrupted."""
    sock = bind(host, port)
    _server(app, sock).run(sockets=[sock])


@dataclass
class BackgroundServer:
    """A uvicorn server on a daemon thread; `stop()` shuts it down."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the server to finish and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app, host: str, port: int) -> BackgroundServer:
    """Start serving `app` on a thread; returns once it accepts connections."""
    sock = bind(host, port)
    server = _server(app, sock)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="apl-labelling", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    shown = f"[{host}]" if ":" in host else host
    return BackgroundServer(server, thread, f"http://{shown}:{port}")
