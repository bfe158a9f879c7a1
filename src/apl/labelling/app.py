"""The labelling page: a small Starlette app over one run's label queue, server-rendered HTML.

GET  /a/{token}  sign in with a personal link, then go to the page (the token leaves the URL)
GET  /label      the next pair: instruction, prompt, the two completions side by side, buttons
POST /answer     one answer (left / right / tie / skip) to the pair shown, then the next pair
POST /undo       take back your newest answer while the run has not used it
GET  /healthz    "ok", for a reverse proxy or a test waiting for the server

URLs in pages and redirects are relative, so the app works behind a proxy under any prefix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from apl.labelling.security import (
    SecurityHeaders,
    cookie_name,
    form_token,
    form_token_ok,
    same_origin,
)
from apl.store.label_queue import LabelQueue, QueueRejection
from apl.store.label_schema import Annotator

logger = logging.getLogger(__name__)

COOKIE_MAX_AGE_S = 30 * 24 * 3600  # a personal link signs a browser in for a month
MAX_FORM_BYTES = 4096  # our forms hold three short fields; anything bigger is not ours
NOTES = {
    "saved": "Saved. Press U to undo it before the run uses it.",
    "undone": "Your last answer was taken back; answer this pair again.",
}


@dataclass(frozen=True)
class PageSettings:
    """What the page says and allows, beyond the queue itself."""

    run_name: str  # shown in the header
    instruction: str  # the task's question, shown above each pair
    label_budget: int  # B: labels the whole run buys
    undo_window_s: float  # how long an answer can be taken back (the judge's undo window)
    resume_command: str  # what the operator runs when no run is waiting
    allowed_origins: tuple[str, ...] = ()  # extra scheme://host for a reverse proxy
    secure_cookies: bool = False  # set when served over https (behind a TLS proxy)


def create_app(queue: LabelQueue, page: PageSettings) -> Starlette:
    """The ASGI app for one run's queue."""
    env = Environment(loader=PackageLoader("apl.labelling", "templates"), autoescape=True)
    secret = queue.secret()
    cookie = cookie_name(secret)

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        depth = request.url.path.count("/") - 1
        root = "../" * depth if depth > 0 else "./"
        html = env.get_template(name).render(root=root, run_name=page.run_name, **context)
        return HTMLResponse(html, status_code=status)

    def message(request: Request, status: int, text: str) -> HTMLResponse:
        return render(request, "message.html", status=status, status_code=status, text=text)

    def session(request: Request) -> tuple[str, Annotator]:
        token = request.cookies.get(cookie, "")
        if not token:
            raise HTTPException(401, "Open the personal link your operator gave you to sign in.")
        who = queue.annotator_for_token(token)
        if who is None:
            raise HTTPException(403, "This sign-in is not valid for this run (link replaced?).")
        return token, who

    async def checked_form(request: Request) -> tuple[Annotator, Any]:
        token, who = session(request)
        if not same_origin(request, page.allowed_origins):
            raise HTTPException(403, "Request from another site refused.")
        size = request.headers.get("content-length", "")
        if not size.isdigit() or int(size) > MAX_FORM_BYTES:
            raise HTTPException(413, "The form is too large or has no length; reload the page.")
        form = await request.form(max_files=0, max_fields=8, max_part_size=MAX_FORM_BYTES)
        if not form_token_ok(secret, token, form.get("csrf")):
            raise HTTPException(403, "Missing or wrong form token; reload the page and try again.")
        return who, form

    async def home(request: Request) -> Response:
        if request.cookies.get(cookie):
            return RedirectResponse("label", status_code=303)
        return message(request, 401, "Open the personal link your operator gave you to sign in.")

    async def sign_in(request: Request) -> Response:
        token = request.path_params["token"]
        who = queue.annotator_for_token(token)
        if who is None:
            return message(request, 403, "This link is not valid for this run (replaced?).")
        response = RedirectResponse("../label", status_code=303)
        response.set_cookie(
            cookie,
            token,
            max_age=COOKIE_MAX_AGE_S,
            httponly=True,
            samesite="lax",
            secure=page.secure_cookies,
        )
        logger.info("Annotator %s signed in", who.name)
        return response

    async def label(request: Request) -> Response:
        token, who = session(request)
        pair = queue.next_pair(who.id)
        if pair is not None:
            queue.mark_shown(pair.id, who.id)
        progress = queue.progress()
        left, right = pair.shown if pair is not None else ("", "")
        return render(
            request,
            "label.html",
            who=who.name,
            pair=pair,
            left=left,
            right=right,
            csrf=form_token(secret, token),
            progress=progress,
            page=page,
            note=NOTES.get(request.query_params.get("n", "")),
        )

    async def answer(request: Request) -> Response:
        who, form = await checked_form(request)
        choice = str(form.get("choice", ""))
        if choice not in ("left", "right", "tie", "skip"):
            return message(request, 400, "Unknown choice; use the buttons or the keys A, B, T, S.")
        try:
            pair_id = int(str(form.get("pair", "")))
        except ValueError:
            return message(request, 400, "The form names no pair; reload the page.")
        try:
            queue.answer(pair_id, who.id, choice)
        except QueueRejection as err:
            return message(request, err.status, str(err))
        return RedirectResponse("label?n=saved", status_code=303)

    async def undo(request: Request) -> Response:
        who, _ = await checked_form(request)
        try:
            queue.undo_last(who.id)
        except QueueRejection as err:
            return message(request, err.status, str(err))
        return RedirectResponse("label?n=undone", status_code=303)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or "Not found."
        return message(request, status, str(detail))

    routes = [
        Route("/", home),
        Route("/a/{token}", sign_in),
        Route("/label", label),
        Route("/answer", answer, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(packages=[("apl.labelling", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error},
    )
