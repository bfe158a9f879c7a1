"""Ties and INVALID verdicts that use up the reserve: the round tops up and still ends with M.

Runs `apl run` on the tiny model against a real local chat-completions server whose judge
answers about half of all requests with a reply that names neither review (INVALID).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

import pytest
from oracles.chat_server import ChatServer, Reply, user_message
from typer.testing import CliRunner

from apl.cli import app
from apl.store.ledger import Ledger
from apl.store.run_dir import load_run_dir
from apl.types import Completion, Judgement, Pair, Prompt, Verdict

from .conftest import prefer_positive, run_config, write_config

INVALID_REPLY = "Both reviews are equally positive.\nPreferred: neither"


def half_invalid(request: dict) -> Reply:
    """INVALID for a fixed half of the requests (by a hash of the text), else the positive one."""
    if not request.get("messages"):
        return Reply(status=400, content="empty request")
    digest = hashlib.sha1(user_message(request).encode()).digest()
    return Reply(content=INVALID_REPLY) if digest[0] % 2 else prefer_positive(request)


def _config(model_dir, out, base_url: str, budget: int) -> dict:
    return run_config(
        model_dir,
        out,
        oracle={
            "name": "openai_judge",
            "model": "judge-test",
            "base_url": base_url,
            "api_key_env": "APL_TEST_KEY",
            "prices": {"judge-test": [1.0, 2.0]},
            "concurrency": 4,
        },
        loop={"label_budget": budget, "query_size": 8, "pool_size": 24},
        dpo={"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        evaluation={"num_prompts": 4},
    )


def _run(tmp_path, config: dict, monkeypatch) -> Ledger:
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    path = write_config(tmp_path / "c.yaml", config)
    result = CliRunner().invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return load_run_dir(config["output_dir"]).open_ledger()


@pytest.mark.slow
def test_a_round_short_of_labels_tops_up_to_exactly_M(tmp_path, tiny_model_dir, monkeypatch):
    server = ChatServer(default=half_invalid).start()
    try:
        config = _config(tiny_model_dir, tmp_path / "run", server.base_url, budget=16)
        with _run(tmp_path, config, monkeypatch) as ledger:
            per_round = Counter(lp.round for lp in ledger.labelled())
            metrics = ledger.metrics()
            candidates = [c for r in (1, 2) for c in ledger.candidates(r)]
            invalid = {
                r: sum(j.verdict is Verdict.INVALID for j in ledger.verdicts(r).values())
                for r in (1, 2)
            }
    finally:
        server.stop()
    assert per_round == {1: 8, 2: 8}  # the planned M every round, despite ~half INVALID
    assert sum(invalid.values()) > 2 * 2  # more than the two reserves could absorb
    topped = [c for c in candidates if c.pair.extras.get("top_up")]
    assert topped and max(metrics[r]["label/top_ups"] for r in (1, 2)) >= 1
    assert all(metrics[r]["label/usable"] == 8 for r in (1, 2))
    assert [metrics[r]["label/total"] for r in (1, 2)] == [8, 16]
    for r in (1, 2):  # top-ups rank after the round's first candidates, in order
        ranks = [c.rank for c in candidates if c.round == r]
        assert ranks == list(range(len(ranks)))
    uids = [c.pair.prompt.uid for c in candidates]
    assert len(uids) == len(set(uids))  # a top-up never re-offers a prompt


class Recorder(logging.Handler):
    """Keeps the records of one logger (the CLI replaces the root handlers, caplog's too)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Recorder:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


@pytest.mark.slow
def test_a_judge_that_never_answers_ends_the_round_short_after_one_top_up(
    tmp_path, tiny_model_dir, monkeypatch
):
    server = ChatServer(default=lambda request: Reply(content=INVALID_REPLY)).start()
    try:
        config = _config(tiny_model_dir, tmp_path / "run", server.base_url, budget=8)
        with Recorder("apl.loop.top_up") as log, _run(tmp_path, config, monkeypatch) as ledger:
            candidates = ledger.candidates(1)
            asked = len(ledger.verdicts(1))
    finally:
        server.stop()
    assert {c.pair.extras.get("top_up", 0) for c in candidates} == {0, 1}
    assert asked == len(candidates) == 10 + 10  # M + reserve, then one top-up of 8 + 2
    warnings = [r.getMessage() for r in log.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Round 1 ends with 0 of 8 usable labels (20 ties/invalid): top-up 1 got no usable "
        "label (is the judge answering?). Raise acquisition.reserve, or check the judge."
    ]


def _pair(uid: str) -> Pair:
    return Pair(Prompt(uid, "A film"), Completion(" good", (1,)), Completion(" bad", (2,)))


def test_add_candidates_appends_after_the_last_rank_only_while_labelling(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        with pytest.raises(ValueError, match="round 1 has no candidates"):
            ledger.add_candidates(1, [_pair("x")])
        first = ledger.save_candidates(1, [_pair("a"), _pair("b")])
        ledger.record_verdict(first[0].id, Judgement(Verdict.INVALID))
        grown = ledger.add_candidates(1, [_pair("c"), _pair("d")])
        assert [(c.rank, c.pair.prompt.uid) for c in grown] == [
            (0, "a"),
            (1, "b"),
            (2, "c"),
            (3, "d"),
        ]
        assert ledger.verdict_for(first[0].id).verdict is Verdict.INVALID  # untouched
        ledger.set_phase(1, "labelled")
        with pytest.raises(ValueError, match="round 1 is already 'labelled'"):
            ledger.add_candidates(1, [_pair("e")])
        assert len(ledger.candidates(1)) == 4
