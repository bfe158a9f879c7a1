"""The `chat` judge template: the conversation by role and two assistant replies, over real HTTP."""

from __future__ import annotations

import pytest

from apl.errors import ConfigError
from apl.oracles import ORACLES, JudgeRequest
from apl.oracles.prompts import load_template
from apl.types import Message, Prompt, Verdict

from .chat_server import Reply, user_message

CONVERSATION = Prompt(
    uid="custom-1",
    text="<|im_start|>user\n...",  # the templated text the policy saw; judges never read it
    messages=(
        Message("system", "You are a film critic."),
        Message("user", "Was Alien any good?"),
        Message("assistant", "Which part?"),
        Message("user", "The ending."),
    ),
)


def test_chat_template_asks_for_helpful_and_harmless_with_a_preferred_line():
    messages = load_template("chat").render(CONVERSATION.judge_text, "Tense.", "Bad.")
    assert "evaluates the quality of an AI assistant's replies" in messages[0]["content"]
    user = messages[1]["content"]
    assert "most helpful" in user and "harmless" in user
    assert (
        "Conversation:\nSystem: You are a film critic.\n\nUser: Was Alien any good?\n\n"
        "Assistant: Which part?\n\nUser: The ending.\n\nReply A: Tense.\n\nReply B: Bad.\n" in user
    )
    assert user.endswith('Preferred: <"A" or "B">')


def test_judge_sees_the_conversation_in_random_order_and_maps_back(make_judge, server):
    judge = make_judge(template="chat", order="random", seed=1)
    replies = [(f"Reply {i} is tense.", f"Reply {i} is dull.") for i in range(8)]
    requests = [JudgeRequest(CONVERSATION.judge_text, a, b) for a, b in replies]

    def prefer_tense(request):  # a stand-in judge: the reply saying "tense" is better
        text = user_message(request)
        shown_a = text.split("Reply A:", 1)[1].split("Reply B:", 1)[0]
        winner = "A" if "tense" in shown_a else "B"
        return Reply(content=f"Comparison: {winner} is more helpful.\nPreferred: {winner}")

    server.default = prefer_tense
    judgements = judge.judge_batch(requests)
    assert [j.verdict for j in judgements] == [Verdict.A] * 8  # always the tense reply
    assert {j.shown_order for j in judgements} == {"AB", "BA"}  # both orders were shown
    for request in server.requests:
        text = user_message(request)
        assert "User: Was Alien any good?\n\nAssistant: Which part?\n\nUser: The ending." in text
        assert "<|im_start|>" not in text


def test_offline_imdb_judge_refuses_chat_prompts():
    with pytest.raises(ConfigError, match="judge template is 'chat'; use oracle.name=openai_judge"):
        ORACLES.build("imdb_judge", {}, cache=None, seed=0, template="chat")
