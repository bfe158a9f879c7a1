"""DPOTrainer on the tiny real GPT-2: modes, caching, determinism, accumulation, dropout, resume."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from conftest import make_preferences

from apl.config import DPOConfig
from apl.errors import ConfigError
from apl.policy.reference import ReferenceModel
from apl.training.dpo_trainer import DPOTrainer


def build(model, tokenizer, seed: int = 0, **options) -> DPOTrainer:
    """A trainer whose reference is a frozen copy of `model` as it is now."""
    options.setdefault("learning_rate", 1e-3)
    options.setdefault("per_device_train_batch_size", 8)
    options.setdefault("num_train_epochs", 2)
    reference = ReferenceModel.from_policy(model, tokenizer)
    return DPOTrainer(model, tokenizer, DPOConfig(**options), reference=reference, seed=seed)


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[n], b[n]) for n in a)


def test_training_learns_the_labelled_direction(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    history = build(model, tok, learning_rate=1e-2, num_train_epochs=4).train(preferences)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[0]["train/loss"] == pytest.approx(math.log(2), abs=0.02)  # starts at theta_0
    assert history[-1]["train/loss"] < 0.3 and history[-1]["rewards/accuracies"] == 1.0
    assert history[-1]["rewards/margins"] > history[0]["rewards/margins"]
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert math.isfinite(history[-1][key])


def test_reference_forward_passes_are_never_repeated(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    trainer = build(model, tok, num_train_epochs=3)
    trainer.train(preferences[:16])
    assert trainer.reference.sequences_scored == 32  # 16 chosen + 16 rejected, once for 3 epochs
    passes = trainer.reference.forward_passes
    trainer.config.num_train_epochs = 1
    trainer.train(preferences)  # next round: 8 new pairs; the first 16 come from the cache
    assert trainer.reference.sequences_scored == 48
    trainer.train(preferences)
    assert trainer.reference.sequences_scored == 48
    assert trainer.reference.forward_passes == passes + 1


def test_reset_restores_theta0_and_a_fresh_optimiser(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    theta0 = weights(model)
    trainer = build(model, tok)
    trainer.train(preferences)
    assert not same(weights(model), theta0) and trainer.optimizer.state_dict()["state"]
    trainer.reset()
    assert same(weights(model), theta0)
    assert trainer.optimizer.state_dict()["state"] == {}


def test_reset_mode_starts_each_round_from_theta0(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    # One batch per epoch: epoch 1's loss is measured before the first step, i.e. at the start.
    trainer = build(model, tok, mode="reset", per_device_train_batch_size=64, learning_rate=1e-2)
    trainer.train(preferences)
    second = trainer.train(preferences)
    assert second[0]["train/loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert second[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)


def test_continue_mode_warm_starts_from_last_round(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    trainer = build(model, tok, mode="continue", per_device_train_batch_size=64, learning_rate=1e-2)
    trainer.train(preferences)
    after_first = weights(model)
    loader = trainer._loader(trainer._rows(preferences), shuffle=False)
    loss_now = trainer.evaluate(loader)["loss"]
    second = trainer.train(preferences)
    assert loss_now < 0.6
    assert second[0]["train/loss"] == pytest.approx(loss_now, rel=1e-4)  # began where round 1 ended
    assert not same(weights(model), after_first)


def test_online_takes_one_step_on_the_newest_batch_only(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    other = copy.deepcopy(model)
    newest = preferences[8:24]
    trainer = build(model, tok, mode="online", per_device_train_batch_size=8)  # 2 micro-batches
    history = trainer.train(preferences, newest=newest)
    assert trainer.global_step == 1 and len(history) == 1
    assert trainer.reference.sequences_scored == 2 * len(newest)  # older labels untouched
    assert trainer.train(preferences, newest=[]) == [] and trainer.global_step == 1  # no labels
    whole = build(other, tok, mode="online", per_device_train_batch_size=16)  # 1 micro-batch
    whole.train(preferences, newest=newest)
    # Adam's first step moves a weight by lr * g / (|g| + eps): where |g| is near eps, the
    # rounding of g (summed in another order over one batch than over two) shows up at ~1e-3
    # of lr, while a wrongly weighted micro-batch would be off by a good fraction of lr.
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5, msg=name)


def test_same_seed_gives_identical_weights(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    twin, stranger = copy.deepcopy(model), copy.deepcopy(model)
    for m, seed in ((model, 3), (twin, 3), (stranger, 4)):
        trainer = build(m, tok, seed=seed, num_train_epochs=1)
        trainer.train(preferences[:16])
        trainer.train(preferences[:16])
    assert same(weights(model), weights(twin))
    assert not same(weights(model), weights(stranger))  # the seed drives the shuffle


def _first_step_grads(model, tok, prefs, batch, accum) -> list[torch.Tensor]:
    trainer = build(
        model,
        tok,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        max_steps=1,
    )
    grads = []
    trainer.optimizer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: grads.extend(
            p.grad.clone() for p in opt.param_groups[0]["params"]
        )
    )
    trainer.train(prefs)
    assert trainer.global_step == 1
    return grads


def test_gradient_accumulation_matches_one_big_batch(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    small = _first_step_grads(copy.deepcopy(model), tok, preferences[:16], batch=8, accum=2)
    big = _first_step_grads(model, tok, preferences[:16], batch=16, accum=1)
    assert len(small) == len(big) > 0
    for a, b in zip(small, big):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_dropout_is_off_during_dpo_unless_asked(tiny_model_dir, tiny_model_and_tokenizer):
    from transformers import AutoModelForCausalLM

    tok = tiny_model_and_tokenizer[1]
    ids = torch.tensor([tok("a fine film with a weak ending")["input_ids"]])
    for disable in (True, False):
        model = AutoModelForCausalLM.from_pretrained(
            tiny_model_dir, resid_pdrop=0.3, attn_pdrop=0.3, embd_pdrop=0.3
        )
        trainer = build(model, tok, disable_dropout=disable)
        trainer.model.train()
        logits = [trainer.model(ids).logits for _ in range(2)]
        rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
        assert rates == ({0.0} if disable else {0.3})
        assert torch.equal(*logits) is disable


def test_validation_split_and_early_stopping(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    from apl.training.batches import split_validation

    # Validation pairs are labelled against the training direction, so once training learns
    # "positive beats negative" the validation loss can only rise: early stopping must fire.
    # seed 0: with each IMDB text once (duplicates dropped), seed 1's 24 pairs happen to teach
    # the tiny model something that also fits the flipped validation pairs
    prefs = make_preferences(tok, 24, seed=0)
    trainer = build(
        model,
        tok,
        learning_rate=1e-2,
        num_train_epochs=12,
        validation_fraction=0.25,
        early_stopping_patience=2,
        per_device_train_batch_size=18,
    )
    _, held = split_validation(trainer._rows(prefs), 0.25)  # the split ignores the label
    held_keys = {(r.prompt_ids, r.chosen_ids) for r in held}
    prompts = trainer.reference.prompt_ids([p.prompt.text for p in prefs])
    is_held = [(ids, tuple(p.chosen.token_ids)) in held_keys for p, ids in zip(prefs, prompts)]
    flipped = [
        dataclasses.replace(p, chosen=p.rejected, rejected=p.chosen) if h else p
        for p, h in zip(prefs, is_held)
    ]
    history = trainer.train(flipped)
    losses = [row["eval/loss"] for row in history]
    best = trainer.best_epoch
    assert len(held) == 6 and best == losses.index(min(losses)) + 1
    assert len(history) == best + 2 < 12  # stopped `patience` epochs after the best one
    held_rows = trainer._rows([p for p, h in zip(flipped, is_held) if h])
    kept = trainer.evaluate(trainer._loader(held_rows, shuffle=False))["loss"]
    assert kept == pytest.approx(min(losses), rel=1e-4)  # the best epoch's weights were restored


def test_state_dict_resumes_a_run_exactly(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    fresh = copy.deepcopy(model)
    trainer = build(model, tok, mode="continue", num_train_epochs=1)
    trainer.train(preferences)
    state = trainer.state_dict()
    resumed = build(fresh, tok, mode="continue", num_train_epochs=1)
    resumed.load_state_dict(state)
    assert same(weights(fresh), weights(model))
    trainer.train(preferences)
    resumed.train(preferences)
    assert same(weights(fresh), weights(model))


def test_bad_options_fail_with_one_line_naming_the_option(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    with pytest.raises(
        ConfigError, match=r"dpo.early_stopping_patience \(2\).*validation_fraction"
    ):
        build(model, tok, early_stopping_patience=2).train(preferences)
    with pytest.raises(ConfigError, match=r"dpo.max_length \(10\) < prompt \+ completion tokens"):
        build(model, tok, max_length=10).train(preferences)


def test_bf16_autocast_trains_on_cpu(tiny_model_and_tokenizer, preferences):
    model, tok = tiny_model_and_tokenizer
    reference = ReferenceModel.from_policy(model, tok, autocast_dtype=torch.bfloat16)
    config = DPOConfig(learning_rate=1e-2, per_device_train_batch_size=8, num_train_epochs=3)
    trainer = DPOTrainer(model, tok, config, reference=reference, autocast_dtype=torch.bfloat16)
    assert trainer.accelerator.mixed_precision == "bf16"
    history = trainer.train(preferences)
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32
    assert history[-1]["train/loss"] < history[0]["train/loss"]


def test_lora_trains_only_the_adapter_and_resets_it(tiny_model_and_tokenizer, preferences):
    from apl.config import LoraConfig
    from apl.policy.model import apply_lora

    model, tok = tiny_model_and_tokenizer
    policy = apply_lora(model, LoraConfig(r=4, lora_alpha=8))
    before = weights(policy)
    reference = ReferenceModel.from_policy(policy, tok, lora=True)
    config = DPOConfig(learning_rate=1e-2, per_device_train_batch_size=8, num_train_epochs=2)
    trainer = DPOTrainer(policy, tok, config, reference=reference)
    history = trainer.train(preferences)
    after = weights(policy)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all("lora_" in n for n in changed)  # the base (= reference) never moves
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    trainer.reset()
    assert same(weights(policy), before)
