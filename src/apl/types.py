"""Plain data passed between stages: prompts, completions, pairs and judgements."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """One turn of a conversation, as in TRL's conversational datasets."""

    role: str  # "system", "user" or "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        """`{"role": ..., "content": ...}`, the form chat templates and TRL take."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Prompt:
    """One prompt from a pool; `uid` is stable across runs for the same task and split.

    `text` is what the policy is conditioned on: for a conversation (`messages` non-empty) it
    is the chat-templated text, generation prompt included, and encoding it
    (`add_special_tokens=False`) gives exactly the template's token ids.
    """

    uid: str
    text: str
    reference: str | None = None  # a reference completion (TLDR's human summary), if any
    label: int | None = None  # task metadata, e.g. IMDB sentiment (1 positive, 0 negative)
    messages: tuple[Message, ...] = ()  # the conversation `text` renders; () for plain text

    @property
    def is_chat(self) -> bool:
        """True for a conversation rendered by a chat template."""
        return bool(self.messages)

    @property
    def judge_text(self) -> str:
        """What a judge reads: each turn labelled with its role for a conversation, else `text`."""
        return conversation_text(self.messages) if self.messages else self.text


def conversation_text(messages: tuple[Message, ...] | list[Message]) -> str:
    """A conversation as judges read it: `Role: content` per turn, turns apart by a blank line."""
    return "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages)


@dataclass(frozen=True)
class Completion:
    """A sampled continuation of a prompt.

    `token_ids` are the completion's own tokens (prompt excluded, EOS included if sampled);
    `logp` is their summed log-probability under the untempered policy that sampled them.
    """

    text: str
    token_ids: tuple[int, ...]
    logp: float | None = None

    @property
    def num_tokens(self) -> int:
        """Number of completion tokens."""
        return len(self.token_ids)


@dataclass
class Pair:
    """A prompt with two completions, plus whatever the scorers attached."""

    prompt: Prompt
    a: Completion
    b: Completion
    ref_logp_a: float | None = None  # log p_ref(a|x), computed once and reused
    ref_logp_b: float | None = None
    score: float | None = None  # acquisition score; higher is acquired first
    extras: dict[str, float] = field(default_factory=dict)  # e.g. reward_a, bt_prob


class Verdict(str, enum.Enum):
    """What a judge decided about completion A versus completion B."""

    A = "A"
    B = "B"
    TIE = "tie"
    INVALID = "invalid"  # never silently turned into a label


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one (prompt, A, B) request, with what it cost."""

    verdict: Verdict
    rationale: str = ""
    shown_order: str = "AB"  # "AB": A shown first; "BA": swapped; "both": asked in each order
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    from_cache: bool = False
    judge_id: str = ""  # identity of the judge (model, template, temperature, order policy)
    retries: int = 0  # transient failures (429, 5xx, timeouts) retried before this answer
    # The judge's own P(A preferred), where it has one (the offline judge does; an LLM reply
    # does not): averaged over eval prompts it gives the lower-variance expected win-rate.
    probability: float | None = None


@dataclass(frozen=True)
class Preference:
    """A labelled pair in DPO's terms, with cached reference log-probs."""

    prompt: Prompt
    chosen: Completion
    rejected: Completion
    ref_logp_chosen: float | None = None
    ref_logp_rejected: float | None = None


@dataclass(frozen=True)
class ImportedAnswer:
    """One person's answer read from a labelling tool's export, about what that tool showed."""

    pair_id: int  # the label queue's pair id, written into the export
    key_tag: str  # the start of that pair's queue key, also written: catches another run's file
    annotator: str  # e.g. 'label-studio:7' or 'argilla:<user uuid>'
    shown_choice: str  # 'left' (first shown), 'right', 'tie' or 'skip'
    seconds: float | None  # time the tool measured, if any
    where: str  # e.g. 'task 3, annotation 1': named in error messages


@dataclass(frozen=True)
class QueueItem:
    """A pair for people to judge, as the `web` oracle queues it: request key, texts, shown order."""

    key: str
    round: int | None
    purpose: str  # 'label' (a training label) or 'eval' (a win-rate judgement)
    prompt: str
    completion_a: str
    completion_b: str
    shown_order: str  # 'AB': completion_a is shown first (left); 'BA': swapped
    needed: int  # answers from distinct annotators before the pair is decided
