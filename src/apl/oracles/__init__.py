"""Judges of (prompt, A, B): LLM judge, offline IMDB judge, reward model and human; one registry."""

from apl.oracles import (  # noqa: F401 - registers each judge
    human,
    imdb_judge,
    openai_judge,
    reward_model,
)
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle

__all__ = ["ORACLES", "JudgeRequest", "JudgementCache", "Oracle"]
