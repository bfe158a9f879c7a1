"""DPO fine-tuning on accelerate, one `train` call per round; TRL's DPOTrainer is the peer.

Modes (`DPOConfig.mode`): `reset` goes back to theta_0 with a fresh optimiser every round and
trains E epochs on all labels (the paper); `continue` warm-starts from the last round's weights
and optimiser; `online` takes exactly one optimiser step on the newest batch (Appendix D).
Reference log-probs come from a `ReferenceModel`, which computes each one once and caches it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from apl.config import DPOConfig
from apl.errors import ConfigError
from apl.memory import release_free_memory
from apl.policy.batching import context_length, model_device
from apl.policy.pair_scoring import pair_logps, supports_shared_prompt
from apl.policy.reference import ReferenceModel
from apl.policy.scoring import sequence_logps
from apl.training.batches import PreferenceCollator, PreferenceRow, check_lengths, split_validation
from apl.training.dpo_loss import dpo_loss, preference_metrics
from apl.training.runtime import disable_dropout, make_accelerator
from apl.types import Preference

logger = logging.getLogger(__name__)

CPU_FORWARD_TOKENS = 1024  # DPOConfig.max_forward_tokens on CPU (see there)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad
    }


class DPOTrainer:
    """Sigmoid-loss DPO of a policy against a fixed reference, round after round."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        config: DPOConfig,
        *,
        reference: ReferenceModel,
        seed: int = 0,
        autocast_dtype: torch.dtype | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.config = config
        self.reference = reference
        self.seed = seed
        pad = tokenizer.pad_token_id
        # One packed row per pair where the model's attention takes a custom 4D mask: the
        # prompt is computed once for both completions (exact; docs/BENCHMARKS.md).
        device = model_device(model)
        chunk = config.max_forward_tokens or (CPU_FORWARD_TOKENS if device.type == "cpu" else None)
        self.collator = PreferenceCollator(
            pad if pad is not None else tokenizer.eos_token_id, supports_shared_prompt(model), chunk
        )
        self._additive_mask = getattr(model.config, "_attn_implementation", None) == "eager"
        context = context_length(model)  # positions beyond the model's context cannot be scored
        self.max_length = min(filter(None, (config.max_length, context)), default=None)
        if config.disable_dropout:
            disable_dropout(model)
        self.accelerator = accelerator or make_accelerator(device, autocast_dtype)
        # `_epoch` accumulates and weights micro-batches itself; accelerate must not divide too.
        self.accelerator.gradient_accumulation_steps = 1
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError(
                "DPOTrainer: the model has no trainable parameters; unfreeze it or add LoRA."
            )
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # All weights or just the LoRA adapter, on CPU; taken after DDP broadcast rank 0's copy.
        self._theta0 = _trainable_state(self._unwrapped())
        self._fresh_optimizer = copy.deepcopy(self.optimizer.state_dict())
        self.rounds_trained = 0
        self.global_step = 0
        self.best_epoch: int | None = None  # set when early stopping picked an epoch

    # --- state -------------------------------------------------------------------------------
    def _unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=True)

    def _load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self._unwrapped().named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def reset(self) -> None:
        """Back to theta_0 exactly (weights or LoRA adapter) with a fresh optimiser state."""
        self._load_trainable(self._theta0)
        self.optimizer.load_state_dict(copy.deepcopy(self._fresh_optimizer))
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        """Trained weights (CPU), optimiser state and counters, so a round can be checkpointed."""
        return {
            "model": _trainable_state(self._unwrapped()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),  # a snapshot, not live tensors
            "rounds_trained": self.rounds_trained,
            "global_step": self.global_step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (resume after a crash)."""
        self._load_trainable(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.rounds_trained = state["rounds_trained"]
        self.global_step = state["global_step"]

    # --- data --------------------------------------------------------------------------------
    def _rows(self, preferences: Sequence[Preference]) -> list[PreferenceRow]:
        if not preferences:
            raise ValueError("DPOTrainer.train needs at least one labelled preference")
        filled = self.reference.fill(preferences)  # computes only log-probs not cached yet
        prompts = self.reference.prompt_ids([p.prompt.text for p in filled])
        rows = [
            PreferenceRow(
                pr,
                tuple(p.chosen.token_ids),
                tuple(p.rejected.token_ids),
                p.ref_logp_chosen,
                p.ref_logp_rejected,
            )
            for pr, p in zip(prompts, filled)
        ]
        check_lengths(rows, self.max_length)
        return rows

    def _round_seed(self) -> int:
        return int(np.random.SeedSequence([self.seed, self.rounds_trained]).generate_state(1)[0])

    def _loader(self, rows: list[PreferenceRow], shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self._round_seed()) if shuffle else None
        loader = DataLoader(
            rows,
            batch_size=self.config.per_device_train_batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=self.collator,
        )
        return self.accelerator.prepare(loader)

    @contextlib.contextmanager
    def _seeded(self) -> Iterator[None]:
        # Dropout (when left on) draws from the global RNG: seed it per round, restore it after.
        device = model_device(self._unwrapped())
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self._round_seed())
            yield

    # --- training ----------------------------------------------------------------------------
    def train(
        self, preferences: Sequence[Preference], newest: Sequence[Preference] | None = None
    ) -> list[dict[str, float]]:
        """Train one round as `config.mode` says; one metrics dict per epoch (online: one step).

        `preferences` is every label so far; `newest` the batch just labelled (online mode trains
        on it alone and defaults it to `preferences`; an empty batch takes no step). Missing
        reference log-probs are filled first.
        """
        with self._seeded():
            if self.config.mode == "online":
                batch = list(newest) if newest is not None else list(preferences)
                history = self._online(self._rows(batch)) if batch else []
            else:
                if self.config.mode == "reset":
                    self.reset()
                history = self._fit(self._rows(list(preferences)))
        self.rounds_trained += 1
        self.model.eval()
        return history

    def _fit(self, rows: list[PreferenceRow]) -> list[dict[str, float]]:
        cfg = self.config
        train_rows, val_rows = split_validation(rows, cfg.validation_fraction)
        patience = cfg.early_stopping_patience
        if patience is not None and not val_rows:
            raise ConfigError(
                f"dpo.early_stopping_patience ({patience}) needs a validation set, but "
                f"dpo.validation_fraction ({cfg.validation_fraction}) holds out no pairs of "
                f"{len(rows)}; set validation_fraction > 0 or drop early_stopping_patience."
            )
        loader = self._loader(train_rows, shuffle=True)
        val_loader = self._loader(val_rows, shuffle=False) if val_rows else None
        max_steps = cfg.max_steps if cfg.max_steps > 0 else None
        history: list[dict[str, float]] = []
        steps, best_loss, best_state, since_best = 0, math.inf, None, 0
        self.best_epoch = None
        for epoch in range(1, cfg.num_train_epochs + 1):
            metrics, steps = self._epoch(loader, cfg.gradient_accumulation_steps, steps, max_steps)
            release_free_memory()  # keeps peak RSS flat across epochs (see apl.memory)
            metrics["epoch"] = float(epoch)
            if val_loader is not None:
                metrics.update({f"eval/{k}": v for k, v in self.evaluate(val_loader).items()})
            history.append(metrics)
            logger.info(
                "DPO epoch %d/%d: loss %.4f, reward accuracy %.3f, margin %.4f%s",
                epoch,
                cfg.num_train_epochs,
                metrics["train/loss"],
                metrics["rewards/accuracies"],
                metrics["rewards/margins"],
                f", eval loss {metrics['eval/loss']:.4f}" if val_loader is not None else "",
            )
            if patience is not None:
                if metrics["eval/loss"] < best_loss:
                    best_loss, since_best, self.best_epoch = metrics["eval/loss"], 0, epoch
                    best_state = _trainable_state(self._unwrapped())
                else:
                    since_best += 1
                    if since_best >= patience:
                        logger.info(
                            "early stop after epoch %d; keeping epoch %d", epoch, self.best_epoch
                        )
                        break
            if max_steps is not None and steps >= max_steps:
                break
        if best_state is not None:
            self._load_trainable(best_state)
        return history

    def _online(self, rows: list[PreferenceRow]) -> list[dict[str, float]]:
        loader = self._loader(rows, shuffle=False)
        # Accumulate over every micro-batch of the newest batch: exactly one optimiser step.
        metrics, _ = self._epoch(loader, max(1, len(loader)), 0, None)
        metrics["epoch"] = 1.0
        return [metrics]

    def _chunk_logps(self, chunk: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probs of one chunk's chosen and rejected completions, float32 [n] each."""
        with self.accelerator.autocast():
            if "segments" in chunk:  # packed pairs (PreferenceCollator with shared_prompt)
                return pair_logps(self.model, chunk, self._additive_mask)
            logps = sequence_logps(
                self.model,
                chunk["input_ids"],
                chunk["attention_mask"],
                chunk["completion_mask"],
                position_ids=chunk["position_ids"],
            )
        return logps.float().chunk(2)

    def _chunk_losses(self, batch: dict, chunk: dict) -> tuple[torch.Tensor, ...]:
        """(losses, chosen rewards, rejected rewards, chosen logps, rejected logps) of a chunk."""
        chosen, rejected = self._chunk_logps(chunk)
        pairs = chunk["pairs"]
        losses, r_chosen, r_rejected = dpo_loss(
            chosen,
            rejected,
            batch["ref_chosen"][pairs],
            batch["ref_rejected"][pairs],
            self.config.beta,
        )
        return losses, r_chosen, r_rejected, chosen, rejected

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Mean DPO loss of a collated batch, and per-pair (loss, rewards, logps) for metrics."""
        parts = [self._chunk_losses(batch, chunk) for chunk in batch["chunks"]]
        losses, r_chosen, r_rejected, chosen, rejected = _in_batch_order(batch, parts)
        return losses.mean(), (
            losses.detach(),
            r_chosen,
            r_rejected,
            chosen.detach(),
            rejected.detach(),
        )

    def backward(
        self, batch: dict, scale: float = 1.0, sync: bool = True
    ) -> tuple[torch.Tensor, ...]:
        """Backward of `scale` x the batch's mean DPO loss, one chunk at a time.

        Each chunk adds its pairs' share (sum of their losses / batch size), so the gradient is
        the mean over the batch's pairs while only one chunk's graph is held at a time. Under
        DDP only the last chunk's backward all-reduces, and none when `sync` is False (a
        micro-batch before its step's last). Returns compute_loss's per-pair tuple.
        """
        chunks, size = batch["chunks"], len(batch["ref_chosen"])
        parts = []
        for i, chunk in enumerate(chunks):
            last = sync and i == len(chunks) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                losses, *rest = self._chunk_losses(batch, chunk)
                self.accelerator.backward(losses.sum() * (scale / size))
            parts.append((losses.detach(), *(t.detach() for t in rest)))
        return _in_batch_order(batch, parts)

    def _epoch(
        self, loader: DataLoader, accumulation: int, steps: int, max_steps: int | None
    ) -> tuple[dict[str, float], int]:
        """One pass over `loader`, one optimiser step per `accumulation` micro-batches.

        Each micro-batch's mean loss is weighted by its share of its step's pairs, so every pair
        weighs the same in every step: the accumulated gradient is the mean-loss gradient over
        exactly that step's pairs, also for an uneven last micro-batch or a short last group.
        (accelerate's `accumulate` divides every micro-batch by `gradient_accumulation_steps`,
        which overweights a short last batch and underweights a short last group.) Under DDP
        each process weights its own pairs and DDP averages the processes.
        """
        self.model.train()
        parts: list[tuple[torch.Tensor, ...]] = []
        for group in _step_groups(loader, accumulation):
            pairs = sum(len(b["ref_chosen"]) for b in group)
            for i, batch in enumerate(group):
                # The step's mean loss: each micro-batch weighs its pairs' share; DDP
                # all-reduces only on the step's last backward.
                per_pair = self.backward(
                    batch, len(batch["ref_chosen"]) / pairs, sync=i == len(group) - 1
                )
                parts.append(self.accelerator.gather_for_metrics(per_pair))
            if self.config.max_grad_norm is not None:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
            steps += 1
            self.global_step += 1
            if steps % 16 == 0:
                release_free_memory()  # long epochs too (see apl.memory)
            if max_steps is not None and steps >= max_steps:
                break
        metrics = _summarise(parts)
        metrics["train/loss"] = metrics.pop("loss")
        metrics["train/global_step"] = float(self.global_step)
        return metrics, steps

    @torch.no_grad()
    def evaluate(self, loader: DataLoader) -> dict[str, float]:
        """Loss and reward metrics on a prepared loader, without updating anything."""
        was_training = self.model.training
        self.model.eval()
        parts = [self.accelerator.gather_for_metrics(self.compute_loss(b)[1]) for b in loader]
        self.model.train(was_training)
        return _summarise(parts)


def _in_batch_order(batch: dict, parts: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Per-chunk tuples of per-pair tensors, concatenated and put back in the batch's order."""
    order = torch.cat([chunk["pairs"] for chunk in batch["chunks"]]).argsort()
    return tuple(torch.cat(column)[order] for column in zip(*parts))


def _step_groups(loader: DataLoader, size: int) -> Iterator[list[dict[str, torch.Tensor]]]:
    """The loader's micro-batches in consecutive groups of `size`; the last may be shorter."""
    group: list[dict[str, torch.Tensor]] = []
    for batch in loader:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _summarise(parts: list[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    losses, r_chosen, r_rejected, chosen, rejected = (torch.cat(x) for x in zip(*parts))
    return preference_metrics(losses, r_chosen, r_rejected, chosen, rejected)
