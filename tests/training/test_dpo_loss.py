"""The DPO loss and implicit reward against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from apl.training.dpo_loss import dpo_loss, implicit_reward, preference_metrics


def test_implicit_reward_is_beta_times_log_ratio():
    policy = torch.tensor([-10.0, -3.0, -7.5])
    ref = torch.tensor([-11.0, -3.0, -5.0])
    assert implicit_reward(policy, ref, 0.2).tolist() == pytest.approx([0.2, 0.0, -0.5])


def test_dpo_loss_hand_computed():
    # rewards: chosen 0.2 * (-10 - -11) = 0.2, rejected 0.2 * (-12 - -11) = -0.2; margin 0.4
    losses, chosen, rejected = dpo_loss(
        torch.tensor([-10.0, -5.0]),
        torch.tensor([-12.0, -5.0]),
        torch.tensor([-11.0, -4.0]),
        torch.tensor([-11.0, -6.0]),
        beta=0.2,
    )
    # second pair: chosen 0.2 * -1 = -0.2, rejected 0.2 * 1 = 0.2; margin -0.4
    assert chosen.tolist() == pytest.approx([0.2, -0.2])
    assert rejected.tolist() == pytest.approx([-0.2, 0.2])
    assert losses.tolist() == pytest.approx([math.log1p(math.exp(-0.4)), math.log1p(math.exp(0.4))])


def test_policy_equal_to_reference_gives_log2():
    logps = torch.tensor([-4.0, -9.0, -1.5])
    losses, chosen, rejected = dpo_loss(logps, logps.flip(0), logps, logps.flip(0), beta=0.5)
    assert losses.tolist() == pytest.approx([math.log(2)] * 3)
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0


def test_gradient_matches_closed_form():
    # d/d logp_chosen of -log sigmoid(beta * m) is -beta * sigmoid(-beta * m); rejected: opposite.
    beta, pc, pr = (
        0.3,
        torch.tensor([-2.0], requires_grad=True),
        torch.tensor([-3.0], requires_grad=True),
    )
    losses, _, _ = dpo_loss(pc, pr, torch.tensor([-2.5]), torch.tensor([-2.5]), beta)
    losses.sum().backward()
    margin = (-2.0 + 2.5) - (-3.0 + 2.5)
    expected = -beta / (1 + math.exp(beta * margin))
    assert pc.grad.item() == pytest.approx(expected)
    assert pr.grad.item() == pytest.approx(-expected)


def test_rewards_are_detached_and_metrics_use_trl_names():
    pc = torch.tensor([-1.0, -2.0], requires_grad=True)
    pr = torch.tensor([-3.0, -1.0], requires_grad=True)
    losses, chosen, rejected = dpo_loss(pc, pr, torch.zeros(2), torch.zeros(2), beta=1.0)
    assert not chosen.requires_grad and not rejected.requires_grad
    m = preference_metrics(losses, chosen, rejected, pc, pr)
    assert m["rewards/chosen"] == pytest.approx(-1.5)
    assert m["rewards/rejected"] == pytest.approx(-2.0)
    assert m["rewards/accuracies"] == pytest.approx(0.5)  # first pair right, second wrong
    assert m["rewards/margins"] == pytest.approx(0.5)  # (2 + -1) / 2
    assert m["logps/chosen"] == pytest.approx(-1.5) and m["logps/rejected"] == pytest.approx(-2.0)
    assert m["loss"] == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.exp(1))) / 2)
