"""A resume with another precision recomputes every stored reference log-prob, never mixes two.

Real SQLite ledgers and real reference models (the tiny GPT-2 in fp32 and in bf16 autocast);
the end-to-end test fakes one thing, what the machine answers for bf16 support, since this
project's machines cannot be swapped mid-test.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from apl.cli import app
from apl.loop.numerics import META_KEY, numerics_identity, reconcile_numerics
from apl.policy.reference import ReferenceModel
from apl.store.ledger import Ledger
from apl.store.run_dir import load_run_dir
from apl.types import Completion, Judgement, Pair, Prompt, Verdict

from .conftest import run_config, write_config


def _pairs(tokenizer, texts: list[str]) -> list[Pair]:
    pairs = []
    for i, text in enumerate(texts):
        words = text.split()
        a, b = " ".join(words[4:12]), " ".join(words[12:18])
        pairs.append(
            Pair(
                Prompt(f"u{i}", " ".join(words[:4])),
                Completion(a, tuple(tokenizer(" " + a, add_special_tokens=False)["input_ids"])),
                Completion(b, tuple(tokenizer(" " + b, add_special_tokens=False)["input_ids"])),
            )
        )
    return pairs


def _fill(reference: ReferenceModel, pairs: list[Pair]) -> None:
    prompts = reference.prompt_ids([p.prompt.text for p in pairs])
    values = reference.logps(
        prompts + prompts, [p.a.token_ids for p in pairs] + [p.b.token_ids for p in pairs]
    )
    for i, pair in enumerate(pairs):
        pair.ref_logp_a, pair.ref_logp_b = values[i], values[len(pairs) + i]


def _stored(ledger: Ledger) -> list[tuple[float, float]]:
    return [
        (c.pair.ref_logp_a, c.pair.ref_logp_b)
        for r in ledger.rounds()
        for c in ledger.candidates(r)
    ]


def test_another_precision_recomputes_every_stored_reference_logp(
    tiny_model_and_tokenizer, imdb_sample_texts, tmp_path
):
    model, tokenizer = tiny_model_and_tokenizer
    fp32 = ReferenceModel.from_policy(model, tokenizer)
    fp32_id = numerics_identity(model, None)
    pairs = _pairs(tokenizer, imdb_sample_texts[:12])
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert reconcile_numerics(ledger, fp32, fp32_id) == 0  # a new run records its numerics
        assert json.loads(ledger.meta(META_KEY)) == fp32_id
        _fill(fp32, pairs)
        for round, part in ((1, pairs[:6]), (2, pairs[6:])):
            for candidate in ledger.save_candidates(round, part):
                ledger.record_verdict(candidate.id, Judgement(Verdict.A))
        before = _stored(ledger)
        assert reconcile_numerics(ledger, fp32, fp32_id) == 0  # same numerics: nothing to do
        assert _stored(ledger) == before and fp32.sequences_scored == 24

        # The resumed process runs bf16 autocast: every stored value is replaced by its own.
        bf16 = ReferenceModel.from_policy(model, tokenizer, autocast_dtype=torch.bfloat16)
        bf16_id = numerics_identity(model, torch.bfloat16)
        assert bf16_id["autocast"] == "bfloat16" and fp32_id["autocast"] == "none"
        assert reconcile_numerics(ledger, bf16, bf16_id) == 12
        after = _stored(ledger)
        fresh = ReferenceModel.from_policy(model, tokenizer, autocast_dtype=torch.bfloat16)
        _fill(fresh, pairs)
        assert after == [(p.ref_logp_a, p.ref_logp_b) for p in pairs]  # bf16, all of them
        assert after != before
        assert json.loads(ledger.meta(META_KEY)) == bf16_id
        prefs = ledger.preferences()
        assert [p.ref_logp_chosen for p in prefs] == [a for a, _ in after]  # training sees them
        assert bf16.fill(prefs) and bf16.sequences_scored == 24  # fill computes nothing more
        assert reconcile_numerics(ledger, bf16, bf16_id) == 0


def test_a_ledger_without_recorded_numerics_is_recomputed(
    tiny_model_and_tokenizer, imdb_sample_texts, tmp_path
):
    model, tokenizer = tiny_model_and_tokenizer
    reference = ReferenceModel.from_policy(model, tokenizer)
    pairs = _pairs(tokenizer, imdb_sample_texts[:3])
    for pair in pairs:
        pair.ref_logp_a, pair.ref_logp_b = -1.0, -2.0  # of unknown provenance
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.save_candidates(1, pairs)
        assert ledger.meta(META_KEY) is None
        assert reconcile_numerics(ledger, reference, numerics_identity(model, None)) == 3
        assert all(a != -1.0 and b != -2.0 for a, b in _stored(ledger))


@pytest.mark.slow
def test_resume_on_bf16_hardware_recomputes_the_runs_reference_logps(
    tmp_path, tiny_model_dir, monkeypatch, judge_cache_dir
):
    monkeypatch.setenv("APL_CACHE_DIR", str(judge_cache_dir))
    out = tmp_path / "run"
    config = run_config(
        tiny_model_dir,
        out,
        model={"model_name_or_path": str(tiny_model_dir), "bf16": None},  # auto: the hardware's
        acquisition={"name": "certainty", "cold_start": "compute"},  # round 1 stores refs
        loop={"label_budget": 8, "query_size": 8, "pool_size": 16},
        dpo={"num_train_epochs": 1, "per_device_train_batch_size": 8},
        evaluation={"num_prompts": 4},
    )
    monkeypatch.setattr("apl.policy.model.bf16_supported", lambda device: False)
    result = CliRunner().invoke(
        app, ["run", "--config", str(write_config(tmp_path / "c.yaml", config))]
    )
    assert result.exit_code == 0, result.output
    with load_run_dir(out).open_ledger() as ledger:
        assert json.loads(ledger.meta(META_KEY))["autocast"] == "none"
        before = _stored(ledger)
    assert before and all(a is not None and b is not None for a, b in before)

    monkeypatch.setattr("apl.policy.model.bf16_supported", lambda device: True)
    result = CliRunner().invoke(app, ["resume", str(out)])
    assert result.exit_code == 0, result.output
    with load_run_dir(out).open_ledger() as ledger:
        assert json.loads(ledger.meta(META_KEY))["autocast"] == "bfloat16"
        after = _stored(ledger)
        spend = ledger.spend()
    assert after != before and len(after) == len(before)
    assert all(a is not None and b is not None for a, b in after)
    assert spend.oracle_calls + spend.cache_hits > 0
