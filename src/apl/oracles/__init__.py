"""Judges of (prompt, A, B): the LLM judge, the offline IMDB judge, a human at the terminal and
people at a labelling page (`web`), one registry."""

from apl.oracles import human, imdb_judge, openai_judge, web  # noqa: F401 - registers each judge
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle

__all__ = ["ORACLES", "JudgeRequest", "JudgementCache", "Oracle"]
