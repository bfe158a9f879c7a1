"""The frozen reference p_ref: theta_0 as a frozen copy, or with LoRA the adapter-disabled base.

The reference never changes during a run, so log p_ref(y|x) is computed once per
(prompt, completion) and cached; `forward_passes` counts the batches actually run so tests
can prove no reference pass is ever repeated across epochs or rounds.

`paired_logps` scores a policy against it for implicit rewards: each chunk of rows goes through
the reference and the policy as the same padded batch at the same autocast dtype. In bf16 a
row's log-prob depends on its batch (padding width, neighbours: up to ~0.03 nats measured), so
only the same batch makes a policy equal to its reference score exactly the same; a row whose
reference was cached by an earlier call has its policy scored by replaying that call's chunk.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Sequence

import torch

from apl.errors import ConfigError
from apl.policy.sampling import encode_prompts
from apl.policy.scoring import completion_logps
from apl.types import Preference

logger = logging.getLogger(__name__)

_Key = tuple[tuple[int, ...], tuple[int, ...]]


class ReferenceModel:
    """log p_ref(y|x) for (prompt ids, completion ids), each computed once and cached."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        lora: bool = False,
        autocast_dtype: torch.dtype | None = None,
        batch_size: int = 64,
    ) -> None:
        if lora and not hasattr(model, "disable_adapter"):
            raise ConfigError(
                f"ReferenceModel(lora=True) needs a PEFT model with `disable_adapter`, got "
                f"{type(model).__name__}; wrap it with apply_lora or pass lora=False."
            )
        self.model = model
        self.lora = lora
        self.autocast_dtype = autocast_dtype
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else tokenizer.eos_token_id
        self.forward_passes = 0  # model batches run; cache hits never add to it
        self.sequences_scored = 0
        self.policy_sequences_scored = 0  # policy rows `paired_logps` ran beside the reference
        self._cache: dict[_Key, float] = {}
        self._chunk_of: dict[_Key, tuple[_Key, ...]] = {}  # the batch each value came from
        self._prompt_ids: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_policy(
        cls, model: torch.nn.Module, tokenizer, lora: bool = False, **kwargs
    ) -> ReferenceModel:
        """The reference for a policy at theta_0: adapter-disabled base (LoRA) or frozen copy."""
        if lora:
            return cls(model, tokenizer, lora=True, **kwargs)
        frozen = copy.deepcopy(model).eval()
        frozen.requires_grad_(False)
        return cls(frozen, tokenizer, lora=False, **kwargs)

    def __len__(self) -> int:
        """Number of cached (prompt, completion) log-probs."""
        return len(self._cache)

    def _context(self) -> contextlib.AbstractContextManager:
        # With LoRA the reference *is* the policy's base: switch the adapter off while scoring.
        return self.model.disable_adapter() if self.lora else contextlib.nullcontext()

    def prompt_ids(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """Prompt token ids exactly as sampling encodes them (`encode_prompts`), memoised."""
        new = [t for t in dict.fromkeys(texts) if t not in self._prompt_ids]
        if new:
            self._prompt_ids.update(zip(new, map(tuple, encode_prompts(self.tokenizer, new))))
        return [self._prompt_ids[t] for t in texts]

    def logps(
        self, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]
    ) -> list[float]:
        """Summed log p_ref(completion | prompt) per row; only uncached rows reach the model."""
        if len(prompt_ids) != len(completion_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
        keys = [(tuple(p), tuple(c)) for p, c in zip(prompt_ids, completion_ids)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            self._score(missing)
        return [self._cache[k] for k in keys]

    def _run(self, model: torch.nn.Module, chunk: Sequence[_Key]) -> list[float]:
        """Summed log-probs of one chunk as ONE padded batch (a chunk holds <= batch_size rows)."""
        return completion_logps(
            model,
            [list(p) for p, _ in chunk],
            [list(c) for _, c in chunk],
            batch_size=self.batch_size,
            autocast_dtype=self.autocast_dtype,
            pad_token_id=self.pad_token_id,
        ).tolist()

    def _run_policy(self, policy: torch.nn.Module, chunk: Sequence[_Key]) -> dict[_Key, float]:
        """The policy's log-probs on one chunk (adapter on, for LoRA), counted apart."""
        self.policy_sequences_scored += len(chunk)
        return dict(zip(chunk, self._run(policy, chunk)))

    def _score(self, keys: list[_Key], policy: torch.nn.Module | None = None) -> dict[_Key, float]:
        """Score uncached `keys` chunk by chunk; with `policy`, return its values on each chunk."""
        policy_values: dict[_Key, float] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(keys), self.batch_size):
                chunk = tuple(keys[start : start + self.batch_size])
                with self._context():
                    values = self._run(self.model, chunk)
                self.forward_passes += 1
                self.sequences_scored += len(chunk)
                self._cache.update(zip(chunk, values))
                self._chunk_of.update((k, chunk) for k in chunk)
                if policy is not None:  # the very same batch, adapter on (LoRA) or the policy
                    policy_values.update(self._run_policy(policy, chunk))
        finally:
            self.model.train(was_training)
        logger.debug("reference scored %d new sequences (%d cached)", len(keys), len(self._cache))
        return policy_values

    def paired_logps(
        self,
        policy: torch.nn.Module,
        prompt_ids: Sequence[Sequence[int]],
        completion_ids: Sequence[Sequence[int]],
    ) -> tuple[list[float], list[float]]:
        """(log p_policy, log p_ref) per row, both from the same batches at the same precision.

        Uncached rows: each chunk runs through the reference, then the policy. Rows cached by an
        earlier call: the policy replays the chunk their reference came from. Rows whose value
        was seeded by `fill` (a stored value, batch unknown) are scored in new chunks. A policy
        equal to its reference therefore gives exactly equal values on every row whose
        reference this process computed (every fresh candidate is such a row).
        """
        if len(prompt_ids) != len(completion_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
        keys = [(tuple(p), tuple(c)) for p, c in zip(prompt_ids, completion_ids)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        values = self._score(missing, policy=policy) if missing else {}
        seeded: list[_Key] = []
        for key in dict.fromkeys(keys):
            if key in values:
                continue
            chunk = self._chunk_of.get(key)
            if chunk is None:
                seeded.append(key)
            else:
                values.update(self._run_policy(policy, chunk))
        for start in range(0, len(seeded), self.batch_size):
            values.update(self._run_policy(policy, seeded[start : start + self.batch_size]))
        return [values[k] for k in keys], [self._cache[k] for k in keys]

    def fill(self, preferences: Sequence[Preference]) -> list[Preference]:
        """The preferences with `ref_logp_chosen`/`ref_logp_rejected` set; known values are kept."""
        prompts = self.prompt_ids([p.prompt.text for p in preferences])
        for pref, prompt in zip(
            preferences, prompts
        ):  # known values (e.g. from the store) seed the cache
            if pref.ref_logp_chosen is not None:
                self._cache.setdefault((prompt, tuple(pref.chosen.token_ids)), pref.ref_logp_chosen)
            if pref.ref_logp_rejected is not None:
                self._cache.setdefault(
                    (prompt, tuple(pref.rejected.token_ids)), pref.ref_logp_rejected
                )
        completions = [p.chosen.token_ids for p in preferences] + [
            p.rejected.token_ids for p in preferences
        ]
        values = self.logps(prompts + prompts, completions)
        chosen, rejected = values[: len(preferences)], values[len(preferences) :]
        return [
            dataclasses.replace(p, ref_logp_chosen=c, ref_logp_rejected=r)
            for p, c, r in zip(preferences, chosen, rejected)
        ]
