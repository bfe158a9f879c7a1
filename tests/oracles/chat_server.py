"""A real HTTP server on 127.0.0.1 speaking the chat-completions protocol, with scripted faults.

It stands in for OpenAI, vLLM or Ollama: the judge under test talks to it through the official
`openai` client over a real socket. Each request pops the next scripted `Reply`; when the
script is empty, `default` answers (a function of the request body). Like a real API it bills
every 200 reply it produces (`billed`), whether or not the client is still there to read it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: status, headers, and either a chat reply or a raw body."""

    content: str | None = "Comparison: A is more positive.\nPreferred: A"
    status: int = 200
    usage: tuple[int, int] | None = (100, 20)  # (prompt_tokens, completion_tokens)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (past the client timeout = a timeout)
    raw_body: bytes | None = None  # sent verbatim instead of a chat-completion JSON


def chat_body(content: str | None, usage: tuple[int, int] | None, model: str) -> dict[str, Any]:
    """A minimal but valid chat.completion object."""
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return body


def user_message(request: dict[str, Any]) -> str:
    """The user turn of a chat request."""
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


class ChatServer:
    """Scripted chat-completions server; `requests` records every parsed request body."""

    def __init__(self, default: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.script: deque[Reply] = deque()
        self.default = default or (lambda request: Reply())
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # lower-cased names
        self.paths: list[str] = []
        self.billed: list[tuple[int, int]] = []  # usage of every 200 chat reply produced
        self.in_flight = 0  # requests received and not yet answered
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (`.../v1`)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def bill_usd(self, price: tuple[float, float]) -> float:
        """What the server would charge for its replies so far at `price` USD per 1M tokens."""
        with self._lock:
            return sum(p * price[0] + c * price[1] for p, c in self.billed) / 1e6

    def push(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self.script.extend(replies)

    def start(self) -> ChatServer:
        """Serve in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        self._server.shutdown()
        self._server.server_close()

    def _next_reply(self, request: dict[str, Any], headers: dict[str, str], path: str) -> Reply:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.paths.append(path)
            self.in_flight += 1
            scripted = self.script.popleft() if self.script else None
        return scripted or self.default(request)

    def _answered(self, reply: Reply) -> None:
        with self._lock:
            self.in_flight -= 1
            if reply.status == 200 and reply.raw_body is None and reply.usage is not None:
                self.billed.append(reply.usage)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms stalls

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:  # the client died mid-request: like an API, never process
                    self.close_connection = True  # (or bill) a request that did not arrive
                    return
                request = json.loads(raw or b"{}")
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}', {})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server._next_reply(request, headers, self.path)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                server._answered(reply)  # the work is done (and billed) even if nobody reads it
                if reply.raw_body is not None:
                    body = reply.raw_body
                elif reply.status >= 400:
                    body = json.dumps({"error": {"message": reply.content or "error"}}).encode()
                else:
                    body = json.dumps(
                        chat_body(reply.content, reply.usage, request.get("model", "?"))
                    ).encode()
                self._send(reply.status, body, reply.headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
