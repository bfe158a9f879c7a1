"""Shared fixtures: a tiny GPT-2 and tokenizer built in seconds from IMDB text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The test models are tiny: their ops gain nothing from a second thread, and two threads
# spin-waiting on each other made a step 5-50x slower whenever the machine was busy (measured).
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def shared_prompt_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cut-prompt cache for the session (`APL_PROMPT_CACHE_DIR`, inherited by every `apl`
    subprocess), so each pool is cut once however many fresh `APL_CACHE_DIR`s tests use: a
    start-up saved per run, and never a write into ~/.cache. Cuts are keyed by all that decides
    them, and tests/data/test_prompt_cache.py checks a read equals a fresh cut."""
    directory = tmp_path_factory.mktemp("prompt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APL_PROMPT_CACHE_DIR", str(directory))
        yield directory


@pytest.fixture(scope="session")
def imdb_sample_texts() -> list[str]:
    """2,000 cleaned IMDB train reviews."""
    from apl.data.imdb_reviews import load_imdb_reviews

    return [r.text for r in load_imdb_reviews("train")[:2000]]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, imdb_sample_texts: list[str]) -> Path:
    """A 2-layer width-32 GPT-2 with a 512-token BPE, saved like a hub model (random weights)."""
    from apl.pretrain.model_init import init_gpt2
    from apl.pretrain.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = train_tokenizer(imdb_sample_texts, vocab_size=512)
    model = init_gpt2(tokenizer, n_layer=2, n_embd=32, n_head=2, n_positions=128, seed=0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def tiny_model_and_tokenizer(tiny_model_dir: Path):
    """Fresh copies of the tiny model (eval mode, fp32) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The tiny GPT-2 as a chat model: ChatML template, `<|im_end|>` ending turns (p ~0.1/step)."""
    from chat_model import build_chat_model

    return build_chat_model(tiny_model_dir, tmp_path_factory.mktemp("tiny-chat"))


@pytest.fixture()
def tiny_chat_model_and_tokenizer(tiny_chat_model_dir: Path):
    """Fresh copies of the tiny chat model (eval mode, fp32) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    return model, tokenizer


@pytest.fixture(scope="session")
def fitted_judge_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An APL_CACHE_DIR holding the offline judge's classifier and fluency LM, each fitted once
    per session (every user scores with the judge, which needs both; tests/judge_cache.py
    copies them into a fresh cache)."""
    from apl.oracles.fluency_model import load_fluency_model
    from apl.oracles.sentiment_model import load_sentiment_model

    directory = tmp_path_factory.mktemp("apl-cache")
    load_sentiment_model(directory)
    load_fluency_model(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_reward_model_dir(
    tmp_path_factory: pytest.TempPathFactory, fitted_judge_cache: Path
) -> Path:
    """A tiny reward model trained on the offline judge's verdicts for 10,000 IMDB train pairs."""
    from oracles.tiny_reward_model import imdb_pairs, train_reward_model

    from apl.oracles.imdb_judge import ImdbJudge

    requests = imdb_pairs("train", 10_000, seed=0)
    judge = ImdbJudge(cache_dir=str(fitted_judge_cache))
    verdicts = [j.verdict for j in judge.judge_batch(requests)]
    return train_reward_model(tmp_path_factory.mktemp("tiny-reward-model"), requests, verdicts)
