"""The `web` judge against a real label queue in a ledger file, with people played by a thread.

The "people" call the same queue methods the page calls (`next_pair`, `answer`, `undo_last`),
from another thread, while the judge waits; the page itself is tested in tests/labelling.
"""

from __future__ import annotations

import threading
import time

import pytest

from apl.errors import ConfigError, LabelsPendingError
from apl.oracles import ORACLES, JudgeRequest
from apl.oracles.web import WebJudge, decide_verdict
from apl.store.judgement_cache import JudgementCache
from apl.store.label_queue import LabelQueue
from apl.store.ledger import Ledger
from apl.types import Verdict

REQUESTS = [JudgeRequest(f"prompt {i}", f" good {i}", f" bad {i}") for i in range(4)]


@pytest.fixture()
def queue(tmp_path):
    """A label queue in a fresh run ledger."""
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with LabelQueue(path) as q:
        yield q


def judge(queue, **options) -> WebJudge:
    """A web judge attached to `queue`, polling fast."""
    options = {"poll_s": 0.02, "undo_window_s": 0.0, "serve": False, **options}
    built = ORACLES.build("web", options, cache=None, seed=3)
    built.attach(queue)
    built.begin(1, "label")
    return built


def person(queue: LabelQueue, name: str, pick, delay: float = 0.0, count: int = 4):
    """A thread answering the `count` pairs the queue offers `name`: pick(state) -> a choice."""
    who = queue.annotator_for_token(queue.add_annotator(name))

    def work() -> None:
        done, deadline = 0, time.monotonic() + 20
        while done < count and time.monotonic() < deadline:
            pair = queue.next_pair(who.id)
            if pair is None:
                time.sleep(0.01)
                continue
            time.sleep(delay)
            queue.answer(pair.id, who.id, pick(pair))
            done += 1

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def prefers_good(pair) -> str:
    """Choose the side showing the ' good ' completion, whatever side it is on."""
    return "left" if " good " in pair.shown[0] else "right"


@pytest.mark.parametrize(
    "choices, rule, verdict",
    [
        (["A"], "majority", Verdict.A),
        (["A", "A", "B"], "majority", Verdict.A),
        (["A", "B"], "majority", Verdict.INVALID),
        (["A", "skip", "skip"], "majority", Verdict.INVALID),
        (["tie", "tie", "A"], "majority", Verdict.TIE),
        (["skip"], "majority", Verdict.INVALID),
        (["B", "B", "B"], "unanimous", Verdict.B),
        (["B", "B", "A"], "unanimous", Verdict.INVALID),
        (["tie", "tie"], "unanimous", Verdict.TIE),
        (["A", "A", "B"], 0.75, Verdict.INVALID),  # 2 of 3 is below the rate
        (["A", "A", "A", "B"], 0.75, Verdict.A),
        (["B", "B", "A"], 2 / 3, Verdict.B),
    ],
)
def test_answers_become_one_verdict_by_the_rule(choices, rule, verdict):
    assert decide_verdict(choices, rule) is verdict


def test_the_judge_waits_for_people_and_maps_their_answers_back(queue):
    web = judge(queue)
    worker = person(queue, "alice", prefers_good, delay=0.01)
    judgements = web.judge_batch(REQUESTS)
    worker.join(5)
    assert [j.verdict for j in judgements] == [Verdict.A] * 4  # ' good ' is always request A
    orders = {j.shown_order for j in judgements}
    assert orders == {"AB", "BA"}  # seeded random order: both sides used, answers mapped back
    assert all("alice chose A" in j.rationale and j.judge_id == web.judge_id for j in judgements)
    states = queue.states(range(1, 5))
    assert all(s.verdict == "A" for s in states.values())


def test_k_annotators_per_pair_and_the_unanimous_rule(queue):
    web = judge(queue, annotators_per_pair=2, rule="unanimous")
    people = [
        person(queue, "alice", prefers_good),
        person(queue, "bob", lambda p: "left"),  # always the left side
    ]
    judgements = web.judge_batch(REQUESTS)
    for p in people:
        p.join(5)
    for j in judgements:
        agree = j.shown_order == "AB"  # bob's 'left' is A only when A was shown first
        assert j.verdict is (Verdict.A if agree else Verdict.INVALID)
        assert "alice" in j.rationale and "bob" in j.rationale


def test_a_timeout_stops_cleanly_and_a_later_judge_picks_the_answers_up(queue, tmp_path):
    cache = JudgementCache(tmp_path / "cache.sqlite")
    first = judge(queue, timeout_s=0.2)
    first.cache = cache
    with pytest.raises(LabelsPendingError, match="4 of 4 queued pairs") as err:
        first.judge_batch(REQUESTS)
    assert err.value.exit_code == 3
    assert len(queue.waiting()) == 4  # queued and kept
    person(queue, "alice", prefers_good).join(5)
    again = judge(queue, timeout_s=0.0)  # the resumed run: answers are in, no wait needed
    again.cache = cache
    assert [j.verdict for j in again.judge_batch(REQUESTS)] == [Verdict.A] * 4
    assert queue.open_pairs([]) == [] and len(queue.waiting()) == 0
    cached = judge(queue, timeout_s=0.0)
    cached.cache = cache
    assert all(j.from_cache for j in cached.judge_batch(REQUESTS))


def test_an_answer_inside_the_undo_window_can_still_change(queue):
    web = judge(queue, undo_window_s=0.6)
    who = queue.annotator_for_token(queue.add_annotator("alice"))
    result: list = []
    waiting = threading.Thread(target=lambda: result.extend(web.judge_batch(REQUESTS[:1])))
    waiting.start()
    while (pair := queue.next_pair(who.id)) is None:
        time.sleep(0.01)
    queue.answer(pair.id, who.id, "skip")
    time.sleep(0.1)
    queue.undo_last(who.id)  # within the window: the judge has not used it
    queue.answer(pair.id, who.id, prefers_good(pair))
    waiting.join(5)
    assert [j.verdict for j in result] == [Verdict.A]


def test_evaluation_can_go_to_a_machine_judge(queue):
    web = judge(queue, eval_judge={"name": "imdb_judge"})
    assert web.evaluation_judge().registry_name == "imdb_judge"
    assert judge(queue).evaluation_judge() is not None


@pytest.mark.parametrize(
    "options, option",
    [
        ({"annotators_per_pair": 0}, "annotators_per_pair"),
        ({"rule": "loudest"}, "rule"),
        ({"rule": 0.5}, "rule"),  # a tie between two choices would pass
        ({"rule": 1.5}, "rule"),
        ({"order": "both"}, "order"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"port": 70000}, "port"),
        ({"eval_judge": {"name": "web"}}, "eval_judge"),
        ({"eval_judge": "imdb_judge"}, "eval_judge"),
    ],
)
def test_bad_options_name_the_option(options, option):
    with pytest.raises(ConfigError, match=option):
        ORACLES.build("web", options, cache=None, seed=0)


def test_without_a_run_there_is_no_queue():
    web = ORACLES.build("web", {}, cache=None, seed=0)
    with pytest.raises(ConfigError, match="apl run"):
        web.judge_batch(REQUESTS[:1])
