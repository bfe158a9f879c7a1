"""Conversational prompt pools: TRL-style messages, chat templating, stable uids, token prefixes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from apl.data.chat import ChatFormat, parse_conversation
from apl.data.custom import CustomTask
from apl.errors import ConfigError, DataError
from apl.policy.sampling import encode_prompts
from apl.types import Message

CHATS = [
    {"messages": [{"role": "user", "content": f"Recommend film number {i}."}]} for i in range(30)
] + [
    {
        "messages": [
            {"role": "system", "content": "You are a film critic."},
            {"role": "user", "content": f"Was film {i} any good?"},
            {"role": "assistant", "content": "Which part?"},
            {"role": "user", "content": "The ending."},
        ]
    }
    for i in range(30)
]


@pytest.fixture()
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in CHATS))
    return path


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_chat_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_chat_model_dir)


def test_conversations_are_templated_and_keep_their_turns(chats, chat_tokenizer):
    task = CustomTask(str(chats))  # no `prompt` column: TRL's `messages` column is used
    train, test = (
        task.load_prompts("train", chat_tokenizer),
        task.load_prompts("test", chat_tokenizer),
    )
    assert len(train) + len(test) == 60 and test
    assert not {p.uid for p in train} & {p.uid for p in test}
    by_turns = {json.dumps(r["messages"]): r["messages"] for r in CHATS}
    for prompt in train + test:
        turns = [m.as_dict() for m in prompt.messages]
        assert json.dumps(turns) in by_turns
        assert prompt.text == chat_tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=True
        )
        assert prompt.text.endswith("<|im_start|>assistant\n")
    long = next(p for p in train + test if len(p.messages) == 4)
    assert long.judge_text.startswith("System: You are a film critic.\n\nUser: Was film")
    assert long.judge_text.endswith("Assistant: Which part?\n\nUser: The ending.")
    assert task.judge_template_for(chat_tokenizer) == "chat"


def test_prompt_ids_come_from_the_template_and_prefix_every_reply(chats, chat_tokenizer):
    """The policy's encoding of a prompt is the template's ids, and a prefix of prompt + reply."""
    prompts = CustomTask(str(chats), system_prompt="Be brief.").load_prompts(
        "train", chat_tokenizer
    )
    ids = encode_prompts(chat_tokenizer, [p.text for p in prompts])
    for prompt, prompt_ids in zip(prompts, ids, strict=True):
        turns = [m.as_dict() for m in prompt.messages]
        template_ids = chat_tokenizer.apply_chat_template(
            turns, tokenize=True, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        assert prompt_ids == list(template_ids)
        for reply in ("Yes.", " a reply with a leading space", "Line one\nline two"):
            full = chat_tokenizer.apply_chat_template(
                [*turns, {"role": "assistant", "content": reply}], tokenize=True, return_dict=True
            )["input_ids"]
            assert list(full[: len(prompt_ids)]) == prompt_ids
            assert chat_tokenizer.decode(full[len(prompt_ids) :]) == f"{reply}<|im_end|>\n"


def test_system_prompt_goes_first_unless_the_row_has_one(chats, chat_tokenizer):
    plain = CustomTask(str(chats)).load_prompts("train", chat_tokenizer)
    told = CustomTask(str(chats), system_prompt="Be brief.").load_prompts("train", chat_tokenizer)
    assert [p.uid for p in plain] == [p.uid for p in told]  # uids ignore the system prompt
    for before, after in zip(plain, told, strict=True):
        if before.messages[0].role == "system":
            assert after.messages == before.messages  # the row's own system turn is kept
        else:
            assert after.messages == (Message("system", "Be brief."), *before.messages)
            assert after.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_plain_text_becomes_one_user_turn_with_the_same_uid(
    tmp_path, chat_tokenizer, tiny_tokenizer
):
    path = tmp_path / "plain.jsonl"
    pd.DataFrame({"prompt": [f"Name a film about {w}.  " for w in "abcdefghij"]}).to_json(
        path, orient="records", lines=True
    )
    raw = CustomTask(str(path), test_fraction=0.0).load_prompts("train", tiny_tokenizer)
    chat = CustomTask(str(path), test_fraction=0.0).load_prompts("train", chat_tokenizer)
    off = CustomTask(str(path), test_fraction=0.0, chat_template=False)
    assert [p.uid for p in raw] == [p.uid for p in chat]  # templating never changes a uid
    assert off.load_prompts("train", chat_tokenizer) == raw  # false: raw text, as before
    assert off.judge_template_for(chat_tokenizer) == "sentiment"
    for before, after in zip(raw, chat, strict=True):
        assert not before.is_chat and before.text.endswith(".")
        assert after.messages == (Message("user", before.text),)
        assert after.text == f"<|im_start|>user\n{before.text}<|im_end|>\n<|im_start|>assistant\n"
    explicit = CustomTask(str(path), judge_template="summarization")
    assert explicit.judge_template_for(chat_tokenizer) == "summarization"


def test_parquet_conversations_load_like_jsonl(tmp_path, chats, chat_tokenizer):
    frame = pd.DataFrame({"prompt": [row["messages"] for row in CHATS]})
    frame.to_parquet(tmp_path / "chats.parquet")
    from_parquet = CustomTask(str(tmp_path / "chats.parquet")).load_prompts("test", chat_tokenizer)
    assert from_parquet == CustomTask(str(chats)).load_prompts("test", chat_tokenizer)


def test_settings_that_cannot_work_fail_in_one_line(chats, chat_tokenizer, tiny_tokenizer):
    with pytest.raises(DataError, match="holds conversations but chat templating is off") as err:
        CustomTask(str(chats)).load_prompts("train", tiny_tokenizer)  # no template to render
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="task.chat_template is true but the model's tokenizer"):
        CustomTask(str(chats), chat_template=True).judge_template_for(tiny_tokenizer)
    with pytest.raises(ConfigError, match="task.system_prompt needs chat templating"):
        CustomTask(str(chats), chat_template=False, system_prompt="Hi").load_prompts(
            "train", chat_tokenizer
        )
    with pytest.raises(ConfigError, match=r"task.chat_template \('yes'\) must be auto, true"):
        CustomTask(str(chats), chat_template="yes")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "ends"),
        ([{"role": "robot", "content": "hi"}], "each message must be"),
        ([{"role": "user", "content": ["image"]}], "each message must be"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only the first"),
        ([], "empty"),
    ],
)
def test_malformed_conversations_are_named(value, problem):
    with pytest.raises(DataError, match=problem) as err:
        parse_conversation(value, "pool.jsonl row 3")
    assert str(err.value).startswith("pool.jsonl row 3: ") and "\n" not in str(err.value)


def test_a_lone_message_is_not_taken_for_text(tmp_path, chat_tokenizer):
    path = tmp_path / "lone.jsonl"
    path.write_text('{"prompt": {"role": "user", "content": "hi"}}\n')
    with pytest.raises(DataError, match=r"lone.jsonl row 0: the prompt is one message"):
        CustomTask(str(path)).load_prompts("train", chat_tokenizer)


def test_a_template_that_refuses_a_conversation_says_so(chat_tokenizer):
    strict = chat_tokenizer.__class__.from_pretrained(chat_tokenizer.name_or_path)
    strict.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    with pytest.raises(DataError, match="the chat template refused it .Conversation roles must"):
        ChatFormat().render(strict, (Message("user", "hi"),), "pool row 1")


def test_without_generation_prompt_the_policy_writes_the_header_and_a_warning_says_so(
    chats, chat_tokenizer, caplog
):
    task = CustomTask(str(chats), add_generation_prompt=False)
    with caplog.at_level("WARNING", logger="apl.data.chat"):
        prompts = task.load_prompts("train", chat_tokenizer)
    assert all(p.text.endswith("<|im_end|>\n") for p in prompts)
    assert "add_generation_prompt is false" in caplog.text


def test_a_template_that_renders_the_prompt_differently_before_a_reply_is_flagged(
    chats, chat_tokenizer, caplog
):
    """Like templates that open an empty thinking block only in the generation prompt."""
    from chat_model import CHATML

    thinking = chat_tokenizer.__class__.from_pretrained(chat_tokenizer.name_or_path)
    thinking.chat_template = CHATML.replace("assistant\\n'", "assistant\\n<think></think>\\n'")
    with caplog.at_level("WARNING", logger="apl.data.chat"):
        prompts = CustomTask(str(chats)).load_prompts("train", thinking)
    assert prompts[0].text.endswith("<|im_start|>assistant\n<think></think>\n")
    assert "renders a prompt differently when a reply follows it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="apl.data.chat"):
        CustomTask(str(chats)).load_prompts("train", chat_tokenizer)
    assert not caplog.text  # the ChatML template renders prompts the same either way
