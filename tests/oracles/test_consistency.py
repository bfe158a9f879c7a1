"""`apl judge consistency` and `apl judge label`: agreement ± SE as table, Markdown, JSON and PNG."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.errors import DataError
from apl.oracles.consistency import agreement, imdb_pairs, load_pairs
from apl.types import Verdict

from .chat_server import Reply

A, B, T, X = Verdict.A, Verdict.B, Verdict.TIE, Verdict.INVALID


def test_agreement_and_standard_error():
    p, se, n = agreement([A, A, B, B, X], [A, B, B, B, A])  # the invalid pair is left out
    assert (p, n) == (0.75, 4) and se == pytest.approx((0.75 * 0.25 / 4) ** 0.5)
    assert agreement([T], [T])[:2] == (1.0, 0.0)
    assert agreement([X], [A])[2] == 0


def test_pairs_from_file_and_from_imdb(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "P", "a": " x", "b": " y"}\n\n{"prompt": "Q", "a": 1, "b": 2}\n')
    assert [r.prompt for r in load_pairs(path)] == ["P", "Q"]
    path.write_text('{"prompt": "P", "a": " x"}\n')
    with pytest.raises(DataError, match=r"line 1: KeyError 'b'"):
        load_pairs(path)
    chat = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    path.write_text(
        json.dumps({"prompt": chat + [{"role": "user", "content": "Bye?"}], "a": "x", "b": "y"})
    )
    assert load_pairs(path)[0].prompt == "User: Hi?\n\nAssistant: Hello.\n\nUser: Bye?"
    path.write_text(json.dumps({"prompt": [{"role": "user"}], "a": "x", "b": "y"}))
    with pytest.raises(DataError, match=r"line 1: KeyError 'content'"):
        load_pairs(path)
    pairs = imdb_pairs(5, seed=1)
    assert len(pairs) == 5 and all(
        len(r.prompt.split()) == 12 and r.completion_a.startswith(" ") for r in pairs
    )
    assert pairs == imdb_pairs(5, seed=1) and pairs != imdb_pairs(5, seed=2)


def test_cli_consistency_falls_as_noise_rises(tmp_path, sentiment_dir, monkeypatch):
    monkeypatch.setenv(
        "APL_CACHE_DIR", str(sentiment_dir)
    )  # the classifier fitted once per session
    out = tmp_path / "out"
    args = [
        "judge",
        "consistency",
        "-t",
        "0",
        "-t",
        "0.05",
        "-t",
        "1",
        "--num-pairs",
        "60",
        "--output-dir",
        str(out),
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "consistency.json").read_text())
    by_t = {r["temperature"]: r for r in rows}
    assert by_t[0.0]["agreement"] == 1.0 and by_t[0.0]["stderr"] == 0.0
    assert by_t[0.0]["agreement"] >= by_t[0.05]["agreement"] > by_t[1.0]["agreement"]
    assert all(r["num_pairs"] == 60 for r in rows)
    assert "| imdb_judge | 1 | 60 |" in (out / "consistency.md").read_text()
    assert (out / "consistency.png").read_bytes()[:4] == b"\x89PNG"
    assert "agreement" in result.output


def test_cli_consistency_with_the_llm_judge_and_label_cache(tmp_path, server, monkeypatch):
    monkeypatch.setenv("APL_TEST_KEY", "sk-cli-test")
    flip = iter(range(10_000))
    server.default = lambda request: Reply(
        content="Preferred: A" if next(flip) % 3 else "Preferred: B"
    )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "a": " a", "b": " b"}) + "\n" for i in range(6))
    )
    common = [
        "-o",
        f"base_url={server.base_url}",
        "-o",
        "api_key_env=APL_TEST_KEY",
        "-o",
        "model=judge-test",
        "-o",
        "prices={judge-test: [1000, 1000]}",
        "-o",
        "backoff_base_s=0.01",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    result = CliRunner().invoke(
        app,
        [
            "judge",
            "consistency",
            "-j",
            "openai_judge",
            "-t",
            "0.05",
            "--pairs",
            str(pairs),
            "--output-dir",
            str(tmp_path / "o"),
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "o" / "consistency.json").read_text())
    assert (
        server.count == 12
        and row["num_valid"] == 6
        and row["spent_usd"] == pytest.approx(12 * 0.12)
    )
    label = [
        "judge",
        "label",
        "--pairs",
        str(pairs),
        "--output",
        str(tmp_path / "l.jsonl"),
        "-j",
        "openai_judge",
        "-o",
        "temperature=0.05",
        *common,
    ]
    assert CliRunner().invoke(app, label).exit_code == 0
    assert server.count == 12  # every pair was already labelled (draw 0) by the consistency run
    # A new temperature is a new judge (no cache hits): a tiny budget refuses before any call.
    bad = CliRunner().invoke(app, [*label, "-o", "budget_usd=0.0001", "-o", "temperature=0.9"])
    assert (
        bad.exit_code == 2 and bad.output.startswith("error: Judge budget:") and server.count == 12
    )
