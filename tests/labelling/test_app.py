"""The labelling page's security rules, through Starlette's TestClient on a real ledger.

Every refused request must change nothing in the ledger; the rows are compared before and
after. The real browser (keyboard, cookies, Chromium's own Origin headers) is in
test_browser.py; a real uvicorn server on 127.0.0.1 is in test_server.py.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from starlette.testclient import TestClient

from apl.labelling.app import PageSettings, create_app
from apl.labelling.security import CSP, cookie_name
from apl.store.label_queue import LabelQueue
from apl.store.ledger import Ledger
from apl.types import QueueItem

BASE = "http://127.0.0.1:8765"
EVIL = "<script>alert(1)</script>"
PAGE = PageSettings("run-x", "Which review is <b>more</b> positive?", 8, 0.0, "apl resume run-x")


def make_queue(directory) -> LabelQueue:
    """A queue with two pairs: one shown swapped, one whose texts are markup."""
    directory.mkdir(exist_ok=True)
    Ledger(directory / "ledger.sqlite").close()
    queue = LabelQueue(directory / "ledger.sqlite")
    queue.open_pairs(
        [
            QueueItem(
                "k1", 1, "label", "A <img src=x onerror=alert(2)> film", EVIL, "fine", "BA", 1
            ),
            QueueItem("k2", 1, "label", "second", "left text", "right text", "AB", 1),
        ]
    )
    return queue


@pytest.fixture()
def queue(tmp_path):
    """Run one's queue."""
    q = make_queue(tmp_path / "run")
    yield q
    q.close()


def signed_in(queue: LabelQueue, name: str = "alice") -> tuple[TestClient, str]:
    """A client signed in through a fresh link, and the form token from its page."""
    client = TestClient(create_app(queue, PAGE), base_url=BASE)
    page = client.get(f"/a/{queue.add_annotator(name)}")
    assert page.status_code == 200
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def snapshot(queue: LabelQueue) -> list:
    """Every label table's rows, read by a separate connection."""
    conn = sqlite3.connect(queue.path)
    try:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("label_pairs", "label_answers", "label_annotators")
        ]
    finally:
        conn.close()


def test_every_text_is_escaped_and_no_script_runs_inline(queue):
    client, _ = signed_in(queue)
    page = client.get("/label")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;b&gt;more&lt;/b&gt;" in page.text  # the instruction is text too
    assert re.findall(r"<script[^>]*>", page.text) == ['<script src="./static/label.js">']
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/label.js").status_code == 200


def test_the_link_signs_in_with_a_strict_cookie_and_leaves_the_url(queue):
    client = TestClient(create_app(queue, PAGE), base_url=BASE)
    response = client.get(f"/a/{queue.add_annotator('alice')}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "../label"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert client.get("/label").status_code == 200


def test_no_or_a_wrong_sign_in_sees_nothing(queue):
    client = TestClient(create_app(queue, PAGE), base_url=BASE)
    assert client.get("/label").status_code == 401
    assert client.get("/a/not-a-token").status_code == 403
    assert "left text" not in client.get("/label").text


def test_a_token_sees_and_answers_only_its_own_runs_queue(queue, tmp_path):
    other = make_queue(tmp_path / "other-run")
    try:
        theirs = other.add_annotator("mallory")
        client = TestClient(create_app(queue, PAGE), base_url=BASE)
        assert client.get(f"/a/{theirs}").status_code == 403
        before = snapshot(queue)
        # Even with the other run's token planted as this run's cookie:
        client.cookies.set(cookie_name(queue.secret()), theirs)
        assert client.get("/label").status_code == 403
        response = client.post("/answer", data={"csrf": "x", "pair": "1", "choice": "left"})
        assert response.status_code == 403
        assert snapshot(queue) == before
    finally:
        other.close()


GOOD = {"pair": "2", "choice": "left"}


@pytest.mark.parametrize(
    "form, with_token, headers, status",
    [
        (GOOD, False, {}, 403),  # no form token
        ({**GOOD, "csrf": "0" * 64}, False, {}, 403),  # a wrong one
        (GOOD, True, {"origin": "http://evil.example"}, 403),  # a cross-site post
        (GOOD, True, {"origin": "null"}, 403),
        (GOOD, True, {"referer": "http://evil.example/x"}, 403),
        ({"pair": "999", "choice": "left"}, True, {}, 404),  # unknown pair
        ({"pair": "two", "choice": "left"}, True, {}, 400),
        ({"pair": "2", "choice": "both"}, True, {}, 400),
    ],
)
def test_bad_answers_get_a_clear_4xx_and_change_nothing(queue, form, with_token, headers, status):
    client, csrf = signed_in(queue)
    if with_token:
        form = {**form, "csrf": csrf}
    before = snapshot(queue)
    response = client.post("/answer", data=form, headers=headers)
    assert response.status_code == status
    assert f"<h1>{status}</h1>" in response.text
    assert snapshot(queue) == before


def test_an_oversized_form_is_refused_before_it_is_read(queue):
    client, csrf = signed_in(queue)
    before = snapshot(queue)
    big = {"csrf": csrf, "pair": "2", "choice": "left", "padding": "x" * 10_000}
    assert client.post("/answer", data=big).status_code == 413
    assert snapshot(queue) == before


def test_another_sessions_form_token_is_refused(queue):
    _, alices = signed_in(queue, "alice")
    bob, _ = signed_in(queue, "bob")
    before = snapshot(queue)
    assert (
        bob.post("/answer", data={"csrf": alices, "pair": "2", "choice": "left"}).status_code == 403
    )
    assert snapshot(queue) == before


def test_an_answer_maps_through_the_shown_order_and_a_second_one_is_refused(queue):
    client, csrf = signed_in(queue)
    ok = client.post(
        "/answer", data={"csrf": csrf, "pair": "1", "choice": "left"}, headers={"origin": BASE}
    )
    assert ok.status_code == 200 and ok.url.path == "/label"
    assert "Saved" in ok.text and "second" in ok.text  # the next pair is shown
    (answer,) = queue.states([1])[1].answers
    assert answer.choice == "B"  # pair 1 was shown BA: left is completion_b
    before = snapshot(queue)
    again = client.post("/answer", data={"csrf": csrf, "pair": "1", "choice": "right"})
    assert again.status_code == 409 and "already answered" in again.text
    assert snapshot(queue) == before


def test_undo_and_progress_on_the_page(queue):
    client, csrf = signed_in(queue)
    assert "0 of 2" in client.get("/label").text
    client.post("/answer", data={"csrf": csrf, "pair": "1", "choice": "tie"})
    assert "1 of 2" in client.get("/label").text
    undone = client.post("/undo", data={"csrf": csrf})
    assert undone.status_code == 200 and "taken back" in undone.text
    assert queue.states([1])[1].answers == ()
    assert client.post("/undo", data={"csrf": csrf}).status_code == 409
    assert client.post("/undo", data={}).status_code == 403


def test_with_nothing_to_label_the_page_says_what_happens_next(queue):
    client, csrf = signed_in(queue)
    for pair in ("1", "2"):
        client.post("/answer", data={"csrf": csrf, "pair": pair, "choice": "skip"})
    page = client.get("/label")
    assert "Nothing to label right now" in page.text
    assert "apl resume run-x" in page.text  # no run is waiting
    assert 'http-equiv="refresh"' in page.text


def test_get_cannot_change_state_and_unknown_paths_are_404(queue):
    client, _ = signed_in(queue)
    assert client.get("/answer").status_code == 405
    assert client.get("/nope").status_code == 404
    assert client.get("/healthz").text == "ok"
