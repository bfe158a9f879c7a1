"""What keeps the labelling page safe on a network: headers, form tokens, origin checks, cookies.

Completions are untrusted model output, so the page never runs inline script or style (the
Content-Security-Policy allows only this server's own files) and every text goes through
Jinja2's autoescape. A state-changing request needs the session cookie (SameSite=Lax), a form
token signed with the run's secret and bound to that session, and an Origin (or Referer) that
names this server when the browser sends one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin: never leak a URL to another site; no-referrer would make Chrome send
    # `Origin: null` on our own form posts, which the origin check must refuse.
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in HEADERS if n not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cookie_name(secret: str) -> str:
    """The session cookie's name: per run, so two runs served on one host never collide."""
    return "apl_" + hashlib.sha256(("cookie|" + secret).encode()).hexdigest()[:10]


def form_token(secret: str, session_token: str) -> str:
    """The CSRF token for a session: HMAC of the session under the run's secret."""
    return hmac.new(secret.encode(), b"form|" + session_token.encode(), hashlib.sha256).hexdigest()


def form_token_ok(secret: str, session_token: str, sent: str | None) -> bool:
    """Constant-time check of a submitted form token."""
    return bool(sent) and hmac.compare_digest(form_token(secret, session_token), str(sent))


def same_origin(request: Request, allowed: Iterable[str] = ()) -> bool:
    """False if the browser says the request came from another site.

    The Origin header (else the Referer) must name this server's Host, or one of `allowed`
    (scheme://host[:port], for a reverse proxy that rewrites Host). A request with neither
    header (not a browser form) is left to the form token.
    """
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if f"{parts.scheme}://{parts.netloc}" in set(allowed):
        return True
    return bool(parts.netloc) and parts.netloc == request.headers.get("host")
