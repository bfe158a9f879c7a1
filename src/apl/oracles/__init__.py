"""Judges of (prompt, A, B): the LLM judge, the offline IMDB judge, a reward model, a human at
the terminal and people at a labelling page (`web`); one registry."""

from apl.oracles import (  # noqa: F401 - registers each judge
    human,
    imdb_judge,
    openai_judge,
    reward_model,
    web,
)
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle

__all__ = ["ORACLES", "JudgeRequest", "JudgementCache", "Oracle"]
