"""The human judge, fed through a stream and through the CLI's stdin."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apl.cli import app
from apl.errors import OracleError
from apl.oracles.base import JudgeRequest
from apl.oracles.human import HumanJudge
from apl.types import Verdict

REQUESTS = [JudgeRequest(f"Prompt {i}", f" first {i}", f" second {i}") for i in range(4)]


def human(answers: str, **kwargs) -> tuple[HumanJudge, io.StringIO]:
    screen = io.StringIO()
    judge = HumanJudge(
        input_stream=io.StringIO(answers), console=Console(file=screen, width=100), **kwargs
    )
    return judge, screen


def test_answers_map_back_through_the_shown_order():
    judge, screen = human("A\na\nb\nB\n", seed=0)
    judgements = judge.judge_batch(REQUESTS)
    orders = [j.shown_order for j in judgements]
    assert set(orders) == {"AB", "BA"}
    # The person typed A, A, B, B about the *shown* positions.
    shown = ["A", "A", "B", "B"]
    for judgement, typed, order in zip(judgements, shown, orders, strict=True):
        expected = typed if order == "AB" else {"A": "B", "B": "A"}[typed]
        assert judgement.verdict.value == expected
    text = screen.getvalue()
    assert "Which of the following movie reviews is better?" in text and "first 0" in text


def test_tie_skip_retry_and_end_of_input():
    judge, screen = human("maybe\ntie\nskip\n", order="fixed")
    tie, skipped = judge.judge_batch(REQUESTS[:2])
    assert tie.verdict is Verdict.TIE and skipped.verdict is Verdict.INVALID
    assert "Unrecognised answer 'maybe'" in screen.getvalue()
    judge, _ = human("", order="fixed")
    with pytest.raises(OracleError, match="input ended before an answer"):
        judge.judge(REQUESTS[0])
    with pytest.raises(OracleError, match="order 'both' is not supported"):
        HumanJudge(order="both")


def test_cli_label_with_a_human_on_stdin(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"prompt": r.prompt, "a": r.completion_a, "b": r.completion_b}) + "\n"
            for r in REQUESTS[:2]
        )
    )
    out = tmp_path / "labels.jsonl"
    args = [
        "judge",
        "label",
        "--pairs",
        str(pairs),
        "--output",
        str(out),
        "--judge",
        "human",
        "-o",
        "order=fixed",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    result = CliRunner().invoke(app, args, input="b\nskip\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["B", "invalid"]
    assert "Labelled 2 pairs" in result.output and "invalid=1" in result.output
    again = CliRunner().invoke(app, args, input="")  # answered from the cache: no questions
    assert again.exit_code == 0 and "cache_hits=2" in again.output
