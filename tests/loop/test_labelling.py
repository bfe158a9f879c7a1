"""Buying a round's labels: rank order, refill past invalid verdicts and ties, never re-asking."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

from apl.errors import RunStoreError
from apl.loop.labelling import label_round
from apl.oracles.openai_judge import OpenAIJudge
from apl.store.judgement_cache import JudgementCache
from apl.store.ledger import Ledger
from apl.types import Completion, Pair, Prompt, Verdict

from .conftest import Reply


def make_pairs(n: int) -> list[Pair]:
    """`n` candidate pairs whose texts name their rank, so the server can script by rank."""
    return [
        Pair(
            Prompt(f"p{i}", f"prompt {i}"), Completion(f" a{i}", (1, 2)), Completion(f" b{i}", (3,))
        )
        for i in range(n)
    ]


@pytest.fixture()
def judge(judge_server, tmp_path, monkeypatch):
    monkeypatch.setenv("APL_TEST_KEY", "sk-test")
    return OpenAIJudge(
        model="judge-test",
        base_url=judge_server.base_url,
        api_key_env="APL_TEST_KEY",
        prices={"judge-test": (1.0, 1.0)},
        order="fixed",
        concurrency=1,
        backoff_base_s=0.01,
        cache=JudgementCache(tmp_path / "cache.sqlite"),
    )


def script(server, replies: dict[int, str]) -> None:
    """Answer the pair of rank i with replies[i] ('A', 'B', 'tie-ish' or 'junk'), default A."""

    def answer(request):
        text = request["messages"][-1]["content"]
        rank = int(text.split("prompt ", 1)[1].split(" ", 1)[0])
        verdict = replies.get(rank, "A")
        content = (
            f"Comparison: fine.\nPreferred: {verdict}" if verdict in "AB" else "I cannot decide."
        )
        return Reply(content=content)

    server.default = answer


def test_refills_past_invalid_in_rank_order_and_never_reasks(judge_server, judge, tmp_path):
    script(judge_server, {1: "junk", 3: "junk", 4: "B"})
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        candidates = ledger.save_candidates(1, make_pairs(10))
        stats = label_round(ledger, judge, candidates, query_size=5)
        assert (stats.usable, stats.asked, stats.dropped, stats.exhausted) == (5, 7, 2, False)
        held = ledger.verdicts(1)
        # The shortest rank prefix holding 5 usable verdicts: ranks 0..6.
        assert sorted(c.rank for c in candidates if c.id in held) == list(range(7))
        assert [lp.rank for lp in ledger.labelled()] == [0, 2, 4, 5, 6]
        assert held[candidates[4].id].verdict is Verdict.B
        calls = judge_server.count
        again = label_round(ledger, judge, candidates, query_size=5)
        assert again.usable == 5 and judge_server.count == calls  # nothing asked twice


def test_running_out_of_candidates_is_reported_not_forced(judge_server, judge, tmp_path):
    script(judge_server, {0: "junk", 1: "junk"})
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        candidates = ledger.save_candidates(1, make_pairs(4))
        stats = label_round(ledger, judge, candidates, query_size=3)
    assert stats.exhausted and stats.usable == 2 and stats.asked == 4


def test_no_label_is_bought_without_disk_space(judge_server, judge, tmp_path, monkeypatch):
    # A real full disk needs a mount; the disk's free-space answer is the faked part here.
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 10**6, 10**6))
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        candidates = ledger.save_candidates(1, make_pairs(4))
        with pytest.raises(RunStoreError, match="MB free on the disk holding"):
            label_round(ledger, judge, candidates, query_size=2, storage=(tmp_path,))
        assert ledger.verdicts(1) == {}
    assert judge_server.count == 0
