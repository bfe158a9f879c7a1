"""Judge templates: the paper's two and a chat one built in, user files, single-pass substitution."""

from __future__ import annotations

import pytest

from apl.errors import ConfigError
from apl.oracles.prompts import builtin_templates, load_template


def test_builtin_templates_hold_the_papers_prompts():
    assert builtin_templates() == ["chat", "sentiment", "summarization"]
    sentiment = load_template("sentiment")
    messages = sentiment.render("The film", " was great.", " was bad.")
    assert messages[0] == {
        "role": "system",
        "content": "You are a helpful assistant that evaluates the quality and positive sentiment of movie reviews",
    }
    user = messages[1]["content"]
    assert (
        "the most positive sentiment, which also is grammatically correct, consistent, and avoids repetition"
        in user
    )
    assert "Review A: The film was great.\n" in user and "Review B: The film was bad.\n" in user
    assert user.endswith(
        'Comparison: <one-sentence comparison and explanation>\nPreferred: <"A" or "B">'
    )
    summary = load_template("summarization").render("POST text", "sum a", "sum b")[1]["content"]
    assert (
        "Post: POST text" in summary
        and "Summary A: sum a" in summary
        and "Summary B: sum b" in summary
    )
    assert load_template("sentiment").digest != load_template("summarization").digest


def test_user_template_file_and_single_pass_substitution(tmp_path):
    path = tmp_path / "judge.txt"
    path.write_text(
        '[user]\nJSON {"x": 1}\nQ: {prompt}\n1) {completion_a}\n2) {completion_b}\nPreferred?\n'
    )
    template = load_template(str(path))
    (message,) = template.render("P", "{completion_b}", "{prompt}")
    assert message["content"] == 'JSON {"x": 1}\nQ: P\n1) {completion_b}\n2) {prompt}\nPreferred?'


def test_bad_templates_name_the_problem(tmp_path):
    with pytest.raises(
        ConfigError, match=r"'nope' is neither built in \(chat, sentiment, summarization\)"
    ):
        load_template("nope")
    path = tmp_path / "t.txt"
    path.write_text("[user]\nOnly {completion_a}\n")
    with pytest.raises(ConfigError, match=r"lacks \{completion_b\}"):
        load_template(str(path))
    path.write_text("no sections {completion_a} {completion_b}")
    with pytest.raises(ConfigError, match=r"start the file with '\[system\]'"):
        load_template(str(path))
