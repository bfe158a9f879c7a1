"""The label queue on a real ledger file: answers, shown order, k per pair, undo, decisions, stats."""

from __future__ import annotations

import sqlite3
import time

import pytest

from apl.store.label_people import read_agreement
from apl.store.label_queue import LabelQueue, QueueRejection
from apl.store.ledger import Ledger
from apl.types import Judgement, QueueItem, Verdict


def item(key: str, order: str = "AB", needed: int = 1, round: int = 1) -> QueueItem:
    """A queued pair whose texts name its key."""
    return QueueItem(key, round, "label", f"prompt {key}", f"a-{key}", f"b-{key}", order, needed)


@pytest.fixture()
def queue(tmp_path):
    """A queue in a real run ledger."""
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with LabelQueue(path) as q:
        yield q


def rows(queue: LabelQueue, table: str) -> list[tuple]:
    """Every row of a label table, read by a separate connection."""
    conn = sqlite3.connect(queue.path)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def test_opening_pairs_again_keeps_the_first_row_and_its_shown_order(queue):
    first = queue.open_pairs([item("k1", "BA"), item("k2")])
    again = queue.open_pairs([QueueItem("k1", 1, "label", "other", "x", "y", "AB", 3)])
    assert again == first[:1]
    state = queue.states(first)[first[0]]
    assert (state.shown_order, state.needed, state.completion_a) == ("BA", 1, "a-k1")
    assert state.shown == ("b-k1", "a-k1")  # left is what was shown first


def test_an_answer_is_stored_in_the_requests_terms_through_the_shown_order(queue):
    ab, ba = queue.open_pairs([item("k1", "AB"), item("k2", "BA")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    queue.answer(ab, alice.id, "left")
    queue.answer(ba, alice.id, "left")  # left is completion_b here
    choices = {pid: s.answers[0].choice for pid, s in queue.states([ab, ba]).items()}
    assert choices == {ab: "A", ba: "B"}


def test_a_pair_is_never_offered_again_once_it_has_its_answers(queue):
    one, two = queue.open_pairs([item("k1", needed=1), item("k2", needed=2)])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    bob = queue.annotator_for_token(queue.add_annotator("bob"))
    assert queue.next_pair(alice.id).id == one
    queue.answer(one, alice.id, "tie")
    assert queue.next_pair(alice.id).id == two
    assert queue.next_pair(bob.id).id == two  # pair one is full (k=1)
    queue.answer(two, alice.id, "right")
    assert queue.next_pair(alice.id) is None  # answered both
    assert queue.next_pair(bob.id).id == two  # k=2: bob is still wanted
    queue.answer(two, bob.id, "right")
    assert queue.next_pair(bob.id) is None


def test_a_pair_someone_has_open_goes_to_the_others_last(queue):
    one, two = queue.open_pairs([item("k1"), item("k2")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    bob = queue.annotator_for_token(queue.add_annotator("bob"))
    queue.mark_shown(one, alice.id)
    assert queue.next_pair(bob.id).id == two
    assert queue.next_pair(alice.id).id == one  # a reload shows alice her open pair again


@pytest.mark.parametrize(
    "pair, choice, status",
    [(999, "left", 404), ("answered", "left", 409), ("full", "right", 409), (None, "up", 400)],
)
def test_refused_answers_change_nothing(queue, pair, choice, status):
    one, two = queue.open_pairs([item("k1"), item("k2")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    bob = queue.annotator_for_token(queue.add_annotator("bob"))
    queue.answer(one, alice.id, "left")
    target = {"answered": one, "full": one, None: two}.get(pair, pair)
    who = bob if pair == "full" else alice
    before = rows(queue, "label_answers")
    with pytest.raises(QueueRejection) as err:
        queue.answer(target, who.id, choice)
    assert err.value.status == status
    assert rows(queue, "label_answers") == before


def test_undo_takes_back_the_newest_answer_and_shows_its_pair_again(queue):
    one, two = queue.open_pairs([item("k1"), item("k2")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    with pytest.raises(QueueRejection, match="no answer of yours"):
        queue.undo_last(alice.id)
    queue.answer(one, alice.id, "left")
    time.sleep(0.01)
    queue.answer(two, alice.id, "right")
    assert queue.undo_last(alice.id) == two
    assert queue.next_pair(alice.id).id == two  # shown again
    assert [a.choice for a in queue.states([one])[one].answers] == ["A"]
    assert queue.states([two])[two].answers == ()


def test_undo_of_a_decided_answer_is_refused(queue):
    (one,) = queue.open_pairs([item("k1")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    queue.answer(one, alice.id, "left")
    assert queue.decide(one, "A", queue.states([one])[one].answers)
    with pytest.raises(QueueRejection, match="already decided") as err:
        queue.undo_last(alice.id)
    assert err.value.status == 409
    assert [a.choice for a in queue.states([one])[one].answers] == ["A"]


def test_deciding_is_refused_when_the_answers_changed_since_they_were_read(queue):
    (one,) = queue.open_pairs([item("k1")])
    alice = queue.annotator_for_token(queue.add_annotator("alice"))
    queue.answer(one, alice.id, "left")
    seen = queue.states([one])[one].answers
    queue.undo_last(alice.id)
    queue.answer(one, alice.id, "right")
    assert not queue.decide(one, "A", seen)
    assert queue.states([one])[one].verdict is None
    assert queue.decide(one, "B", queue.states([one])[one].answers)
    assert not queue.decide(one, "B", queue.states([one])[one].answers)  # once only


def test_a_new_link_replaces_the_old_one_and_only_a_digest_is_stored(queue):
    old = queue.add_annotator("alice")
    new = queue.add_annotator("alice")
    assert queue.annotator_for_token(old) is None
    assert queue.annotator_for_token(new).name == "alice"
    assert [a.name for a in queue.annotators()] == ["alice"]
    stored = rows(queue, "label_annotators")
    assert all(new not in map(str, row) for row in stored)


def test_progress_counts_the_newest_batch_and_the_labels_held(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        from apl.types import Completion, Pair, Prompt

        pair = Pair(Prompt("u", "p"), Completion("a", (1,)), Completion("b", (2,)))
        (cand,) = ledger.save_candidates(1, [pair])
        ledger.record_verdict(cand.id, Judgement(Verdict.A))
    with LabelQueue(path) as queue:
        assert queue.progress().round is None
        queue.open_pairs([item("k1", round=1)])
        ids = queue.open_pairs([item("k2", round=2), item("k3", round=2)])
        alice = queue.annotator_for_token(queue.add_annotator("alice"))
        queue.answer(ids[0], alice.id, "left")
        progress = queue.progress()
        assert (progress.round, progress.queued, progress.answered) == (2, 2, 1)
        assert (progress.open_pairs, progress.labels_held, progress.run_live) == (2, 1, False)
        queue.heartbeat()
        assert queue.progress().run_live


def test_agreement_and_time_per_label(queue):
    ids = queue.open_pairs([item(f"k{i}", needed=3) for i in range(3)])
    people = {n: queue.annotator_for_token(queue.add_annotator(n)) for n in ("ann", "bo", "cy")}
    answers = {  # pair -> (ann, bo, cy)
        ids[0]: ("left", "left", "left"),
        ids[1]: ("left", "left", "right"),
        ids[2]: ("tie", "skip", "tie"),
    }
    for pair_id, choices in answers.items():
        for (name, who), choice in zip(people.items(), choices, strict=True):
            queue.mark_shown(pair_id, who.id)
            queue.answer(pair_id, who.id, choice)
    summary = queue.agreement()
    stats = {s.name: s for s in summary.annotators}
    # ann: pair0 agrees with 2 of 2, pair1 with 1 of 2, pair2 with cy's tie (bo skipped): 4 / 5
    assert stats["ann"].agreement == pytest.approx(4 / 5)
    assert stats["cy"].agreement == pytest.approx(3 / 5)
    assert (stats["bo"].answers, stats["bo"].skips, stats["bo"].ties) == (3, 1, 0)
    assert stats["ann"].median_seconds is not None and stats["ann"].median_seconds >= 0
    # unordered pairs of non-skip answers: pair0 3/3 agree, pair1 1/3, pair2 1/1
    assert summary.agreement == pytest.approx(5 / 7)
    assert summary.compared_pairs == 3


def test_the_label_tables_sit_beside_the_ledgers_own(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    assert read_agreement(path) is None  # a run that never queued has no label tables
    with LabelQueue(path) as queue:
        queue.open_pairs([item("k1")])
    with Ledger(path) as ledger:
        assert ledger.status(2).labels == 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    assert read_agreement(path).annotators == []
