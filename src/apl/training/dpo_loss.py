"""The DPO objective (paper eq. 4) and the implicit reward the acquisition functions rank by."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def implicit_reward(policy_logps: Tensor, ref_logps: Tensor, beta: float) -> Tensor:
    """r(x, y) = beta * (log p_theta(y|x) - log p_ref(y|x)), elementwise over summed log-probs."""
    return beta * (policy_logps - ref_logps)


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair sigmoid DPO losses -log sigmoid(r_chosen - r_rejected), plus both rewards.

    All inputs are summed completion log-probs, one per pair. The rewards come back detached:
    they feed metrics, while the loss carries the gradient.
    """
    chosen_rewards = implicit_reward(policy_chosen, ref_chosen, beta)
    rejected_rewards = implicit_reward(policy_rejected, ref_rejected, beta)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def preference_metrics(
    losses: Tensor,
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    policy_chosen: Tensor,
    policy_rejected: Tensor,
) -> dict[str, float]:
    """Batch means under TRL's metric names (`rewards/margins`, ...); `loss` is the mean loss."""
    with torch.no_grad():
        return {
            "loss": losses.detach().float().mean().item(),
            "rewards/chosen": chosen_rewards.float().mean().item(),
            "rewards/rejected": rejected_rewards.float().mean().item(),
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
            "rewards/margins": (chosen_rewards - rejected_rewards).float().mean().item(),
            "logps/chosen": policy_chosen.detach().float().mean().item(),
            "logps/rejected": policy_rejected.detach().float().mean().item(),
        }
