"""Conversational prompts: TRL-style messages, rendered by the policy's chat template.

A pool row holds plain text or a conversation (a list of `{"role", "content"}`, as in TRL's
conversational datasets). `ChatFormat` decides whether the tokenizer's chat template wraps the
prompts (`auto`: when the tokenizer has one), prepends an optional system prompt, and renders
each with `add_generation_prompt`; plain text becomes one user turn. The rendered text is the
`Prompt.text` the policy encodes: transformers' `apply_chat_template(tokenize=True)` is exactly
`tokenizer(text, add_special_tokens=False)` on that text, so token ids stay the truth.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from apl.errors import ConfigError, DataError
from apl.types import Message, Prompt

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
PROBE_REPLY = "The answer is 42."  # any reply: used to check how the template ends a prompt


def is_conversation(value: Any) -> bool:
    """True for a list of messages (a list, tuple or the numpy array pandas makes of one)."""
    return isinstance(value, list | tuple | np.ndarray)


def parse_conversation(value: Any, where: str) -> tuple[Message, ...]:
    """The messages of a TRL-style conversation; DataError naming `where` if malformed."""
    items = list(value)
    if not items:
        raise DataError(f"{where}: the conversation is empty; give at least one user turn.")
    messages = []
    for i, item in enumerate(items):
        role = item.get("role") if isinstance(item, Mapping) else None
        content = item.get("content") if isinstance(item, Mapping) else None
        if role not in ROLES or not isinstance(content, str):
            raise DataError(
                f"{where}: message {i} is {str(item)[:80]!r}; each message must be "
                '{"role": "system" | "user" | "assistant", "content": "<text>"}.'
            )
        if role == "system" and i > 0:
            raise DataError(f"{where}: message {i} is a system turn; only the first may be one.")
        messages.append(Message(role, content))
    if messages[-1].role != "user":
        raise DataError(
            f"{where}: the conversation ends with a {messages[-1].role!r} turn; a prompt must "
            "end with the user's turn (drop the final reply, or keep it in `reference_column`)."
        )
    return tuple(messages)


def read_conversation(value: Any, where: str) -> tuple[Message, ...] | None:
    """The turns of a pool value that is a conversation; None for text (a lone message fails)."""
    if isinstance(value, Mapping):
        raise DataError(
            f"{where}: the prompt is one message {str(value)[:80]!r}; give a list of messages "
            '[{"role": "user", "content": "..."}] or plain text.'
        )
    return parse_conversation(value, where) if is_conversation(value) else None


def conversation_key(messages: Sequence[Message]) -> str:
    """Canonical JSON of the turns: what a conversation's uid and hash split are computed from."""
    return json.dumps(
        [[m.role, m.content] for m in messages], ensure_ascii=False, separators=(",", ":")
    )


def has_chat_template(tokenizer: Any) -> bool:
    """True if `tokenizer` carries a chat template."""
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


@dataclasses.dataclass(frozen=True)
class ChatFormat:
    """Whether and how prompts go through the tokenizer's chat template.

    Args:
        chat_template: `auto` (when the tokenizer has one), True (required) or False (raw text).
        add_generation_prompt: end each prompt with the template's assistant header.
        system_prompt: a system turn put first in every conversation that has none.
    """

    chat_template: bool | Literal["auto"] = "auto"
    add_generation_prompt: bool = True
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.chat_template not in ("auto", True, False):
            raise ConfigError(
                f"task.chat_template ({self.chat_template!r}) must be auto, true or false."
            )

    def enabled(self, tokenizer: Any) -> bool:
        """True if prompts are chat-templated for `tokenizer`; ConfigError if required but absent."""
        if self.chat_template is False:
            return False
        found = has_chat_template(tokenizer)
        if self.chat_template is True and not found:
            raise ConfigError(
                "task.chat_template is true but the model's tokenizer has no chat template; use "
                "an instruct/chat model, add a `chat_template` to its tokenizer_config.json, or "
                "set task.chat_template to auto or false."
            )
        return found

    def conversation(self, prompt: Prompt) -> tuple[Message, ...]:
        """The prompt's turns (plain text as one user turn), system prompt first if it has none."""
        turns = prompt.messages or (Message("user", prompt.text),)
        if self.system_prompt is not None and turns[0].role != "system":
            turns = (Message("system", self.system_prompt), *turns)
        return turns

    def apply(self, prompts: list[Prompt], tokenizer: Any, source: str) -> list[Prompt]:
        """The prompts with `text` chat-templated and `messages` set, or unchanged if off.

        Without a tokenizer (the early file check, before any model loads) whether templating
        is on cannot be known yet: the prompts come back as read, and `apply` runs again later.
        """
        if tokenizer is None:
            return prompts
        if not self.enabled(tokenizer):
            if self.system_prompt is not None:
                raise ConfigError(
                    "task.system_prompt needs chat templating, which is off for this model; set "
                    "task.chat_template to true with a chat model, or drop system_prompt."
                )
            if any(p.messages for p in prompts):
                fix = (
                    "set task.chat_template to auto"
                    if self.chat_template is False
                    else "use a model whose tokenizer has a chat template, or plain-text prompts"
                )
                raise DataError(
                    f"{source} holds conversations but chat templating is off (task.chat_template "
                    f"is {self.chat_template!r}); {fix}."
                )
            return prompts
        out = []
        for prompt in prompts:
            turns = self.conversation(prompt)
            text = self.render(tokenizer, turns, f"{source}: prompt {prompt.uid}")
            out.append(dataclasses.replace(prompt, text=text, messages=turns))
        if out:
            self._check_reply_prefix(tokenizer, out[0])
        return out

    def render(self, tokenizer: Any, turns: Sequence[Message], where: str) -> str:
        """The chat template's text for `turns`; DataError with the template's own complaint."""
        try:
            return tokenizer.apply_chat_template(
                [m.as_dict() for m in turns],
                tokenize=False,
                add_generation_prompt=self.add_generation_prompt,
            )
        except Exception as err:  # jinja raises its own errors (e.g. "roles must alternate")
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{where}: the chat template refused it ({detail}).") from None

    def _check_reply_prefix(self, tokenizer: Any, prompt: Prompt) -> None:
        """Warn if the template renders a prompt differently once a reply follows it.

        apl itself trains on the sampled ids after the prompt's ids, but TRL (and the export)
        tokenize prompt + reply through the template, where the prompt's ids must come first.
        """
        ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
        reply = [*(m.as_dict() for m in prompt.messages), {"role": "assistant"}]
        reply[-1]["content"] = PROBE_REPLY
        full = tokenizer.apply_chat_template(reply, tokenize=True, return_dict=True)["input_ids"]
        if not self.add_generation_prompt:
            logger.warning(
                "task.add_generation_prompt is false: the policy writes the assistant header "
                "itself, while TRL (and `apl export`) render it with add_generation_prompt=True."
            )
        elif list(full[: len(ids)]) != list(ids):
            logger.warning(
                "The chat template renders a prompt differently when a reply follows it; TRL "
                "will train an exported pair on a slightly different prompt than apl did."
            )
