"""The prompts each round offers, on the REAL IMDB train pool: the paper's hybrid fits it.

configs/paper_imdb.yaml's hybrid asks for J x S = 8 x 4,000 = 32,000 prompts from a pool of
22,438. The model is replaced by a scripted PolicyView (tests/acquisition/scripted_view.py):
generating 180,000 completions is not a unit test; the pool, the offer and the acquisition
are the real ones.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from acquisition.scripted_view import Scripted, ScriptedView

from apl.acquisition import ACQUISITIONS
from apl.config import load_config
from apl.data import TASKS, sample_prompts
from apl.errors import DataError
from apl.loop.offering import PromptOffer
from apl.policy.model import resolve_model_path

ROOT = Path(__file__).resolve().parents[2]
PAPER = load_config(ROOT / "configs" / "paper_imdb.yaml", ["acquisition.name=hybrid"])


@pytest.fixture(scope="module")
def imdb_train():
    """The imdb task's train split, encoded with the shipped model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:imdb-gpt2"))
    return TASKS.build("imdb", {}).load_prompts("train", tokenizer, seed=0)


def _value(uid: str, k: int) -> float:
    digest = hashlib.blake2b(f"{uid}/{k}".encode(), digest_size=4).digest()
    return -20.0 - 40.0 * int.from_bytes(digest, "big") / 2**32


def _view(prompts, num_samples: int) -> ScriptedView:
    """Entropy samples and pairs with log-probs drawn from a hash of the uid: no model."""
    table = {
        p.uid: {
            "samples": [Scripted(_value(p.uid, k)) for k in range(num_samples)],
            "a": Scripted(_value(p.uid, 100), ref=_value(p.uid, 101)),
            "b": Scripted(_value(p.uid, 102), ref=_value(p.uid, 103)),
        }
        for p in prompts
    }
    return ScriptedView(table, beta=0.2)


@pytest.mark.slow
def test_paper_hybrid_on_the_real_imdb_pool_takes_every_prompt_and_keeps_S(imdb_train, caplog):
    S, M = PAPER.loop.pool_size, PAPER.loop.query_size
    hybrid = ACQUISITIONS.build(PAPER.acquisition.name, PAPER.acquisition.kwargs)
    assert hybrid.prompts_needed(S) == 32_000 > len(imdb_train) > S  # the shortfall, for real
    offer = PromptOffer(imdb_train, "imdb/train")
    with caplog.at_level(logging.WARNING, logger="apl.loop.offering"):
        offered = offer(hybrid, S, np.random.default_rng(0))
    assert len(offered) == len(imdb_train) and {p.uid for p in offered} == {
        p.uid for p in imdb_train
    }
    view = _view(offered, hybrid.num_samples)
    pairs = hybrid.acquire(offered, view, M, np.random.default_rng(0), pool_size=S)
    assert len(pairs) == M + 32  # query size plus the 25% reserve

    entropy_call, pair_call = view.sample_calls
    assert len(entropy_call[0]) == len(imdb_train) and entropy_call[1] == 8  # all ranked
    assert len(pair_call[0]) == S  # pairs for exactly S prompts, the top S by entropy
    entropy = {p.uid: -np.mean([_value(p.uid, k) for k in range(8)]) for p in offered}
    top_s = set(sorted(entropy, key=entropy.get, reverse=True)[:S])
    assert set(pair_call[0]) == top_s
    assert view.ref_calls == [2 * S]  # certainty scored the S pairs, once

    # Round 2: the asked prompts are gone; everything left is offered again, logged only once.
    asked = {p.prompt.uid for p in pairs}
    with caplog.at_level(logging.WARNING, logger="apl.loop.offering"):
        again = offer(hybrid, S, np.random.default_rng(1), exclude_uids=asked)
    assert len(again) == len(imdb_train) - len(asked) and not asked & {p.uid for p in again}
    notes = [r.getMessage() for r in caplog.records if r.name == "apl.loop.offering"]
    assert notes == [
        f"acquisition hybrid wants 32000 prompts per round (8 x loop.pool_size 4000) but "
        f"imdb/train has {len(imdb_train)} unlabelled; offering all of them each round, of which "
        "it keeps 4000."
    ]


def test_a_pool_that_fits_is_drawn_as_before_and_one_below_S_is_an_error(caplog):
    from acquisition.scripted_view import prompts

    pool = prompts(100)
    hybrid = ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4})
    offer = PromptOffer(pool, "toy/train")
    with caplog.at_level(logging.WARNING, logger="apl.loop.offering"):
        got = offer(hybrid, 20, np.random.default_rng(3))
    assert got == sample_prompts(pool, 80, np.random.default_rng(3))  # same draw as ever
    assert not caplog.records
    assert len(offer(hybrid, 30, np.random.default_rng(3))) == 100  # 120 wanted: all 100
    with pytest.raises(DataError, match=r"`loop.pool_size` \(30\) > unlabelled prompts \(25\) "):
        offer(hybrid, 30, np.random.default_rng(3), exclude_uids={f"p{i}" for i in range(75)})


def test_hybrid_keeps_S_whatever_it_is_offered():
    from acquisition.scripted_view import prompts

    offered = prompts(50)
    hybrid = ACQUISITIONS.build("hybrid", {"entropy_multiplier": 4, "num_samples": 2})
    for pool_size, kept in ((10, 10), (None, 13), (60, 50), (2, 5)):  # never below the pairs
        view = _view(offered, 2)
        pairs = hybrid.acquire(offered, view, 4, np.random.default_rng(0), pool_size=pool_size)
        assert len(view.sample_calls[1][0]) == kept and len(pairs) == 5
