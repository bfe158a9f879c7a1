"""Fixtures for the data tests: the tiny BPE tokenizer and hand-made pool files."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The conftest's 512-token byte-level BPE (the default model uses the same kind, at 8k)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def tldr_fixture() -> Path:
    """30 hand-written rows in the schema of CarperAI/openai_summarize_tldr."""
    return FIXTURES / "tldr_sample.jsonl"
