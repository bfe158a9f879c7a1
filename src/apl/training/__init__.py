"""DPO fine-tuning: the loss, the implicit reward acquisition ranks by, and the trainer."""

from apl.training.dpo_loss import dpo_loss, implicit_reward
from apl.training.dpo_trainer import DPOTrainer

__all__ = ["DPOTrainer", "dpo_loss", "implicit_reward"]
