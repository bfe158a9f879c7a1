"""The PolicyView acquisition scores through: the live policy's sampler plus the cached reference.

`sample` returns each completion's untempered log-prob from generation (entropy uses it).
`policy_and_reference_logps` (implicit rewards) scores the policy and the reference over the
same batches at the same precision through `ReferenceModel.paired_logps`, which computes each
reference log-prob once and caches it for training to reuse.

Feature-space acquisitions (an ensemble preference model, BAL-PM's prompt diversity) also read
`labelled` (the paid preferences so far, set by the loop before each acquisition) and
`features` / `prompt_features` (frozen theta_0 hidden states, cached; `apl.policy.features`).

Each public method turns prompts into token ids and per-prompt seeds here, then runs one
`run_*` method on token ids alone. Under several processes the loop sets `remote`, which has
every rank run that same `run_*` call (their `shards` split the work): the acquisition logic
runs once, on the main process, and only the model work is spread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from apl.config import GenerationConfig
from apl.policy.features import FeatureExtractor
from apl.policy.sampling import encode_prompts, sample_completions
from apl.policy.sharding import LOCAL, Shards
from apl.policy.streams import prompt_seeds, seeds_from
from apl.types import Completion, Preference, Prompt

logger = logging.getLogger(__name__)


class ModelPolicyView:
    """`apl.acquisition.PolicyView` over a Hugging Face policy and its `ReferenceModel`.

    Args:
        reference: the `ReferenceModel` (its `paired_logps` scores policy and reference).
        generation: the run's sampling settings; its temperature is used when none is given.
        generator: torch RNG for sampling: each `sample` call draws its stream seed from it, so a
            seeded run acquires the same pairs.
        is_reference: True while the policy's weights equal the reference's (before the first
            DPO update); the loop sets it to False after training.
        compile: decode steps through torch.compile (`sample_completions(compile=...)`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        reference,
        generation: GenerationConfig,
        beta: float,
        generator: torch.Generator | None = None,
        autocast_dtype: torch.dtype | None = None,
        is_reference: bool = True,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.reference = reference
        self.generation = generation
        self.beta = beta
        self.generator = generator
        self.autocast_dtype = autocast_dtype
        self.is_reference = is_reference
        self.compile = compile
        self.labelled: list[Preference] = []  # paid labels so far; the loop sets it each round
        self._prompt_ids: dict[str, tuple[int, ...]] = {}
        self._features: FeatureExtractor | None = None
        self.shards: Shards = LOCAL  # the ranks model work is spread over
        # Set by the loop under several processes: remote(name, *args) runs self.name(*args) on
        # every rank (a collective) and returns this rank's result.
        self.remote: Callable[..., Any] | None = None

    def _do(self, name: str, *args: Any) -> Any:
        """Run `self.name(*args)`, on every rank when `remote` is set."""
        if self.remote is not None:
            return self.remote(name, *args)
        return getattr(self, name)(*args)

    @property
    def feature_extractor(self) -> FeatureExtractor:
        """Frozen-reference features, built on first use (only feature-space strategies pay)."""
        if self._features is None:
            ref = self.reference
            self._features = FeatureExtractor(
                ref.model,
                pad_token_id=ref.pad_token_id,
                lora=ref.lora,
                autocast_dtype=self.autocast_dtype,
                batch_size=self.generation.batch_size,
            )
            self._features.shards = self.shards
        return self._features

    @property
    def feature_sequences(self) -> int:
        """Rows the feature extractor has run (0 if no strategy asked for features)."""
        return 0 if self._features is None else self._features.sequences

    def features(self, prompts: list[Prompt], completions: list[Completion]) -> np.ndarray:
        """[n, hidden]: each completion's mean theta_0 hidden state, its prompt as context."""
        ids = self.prompt_ids(prompts)
        return self._do("run_features", ids, [c.token_ids for c in completions])

    def prompt_features(self, prompts: list[Prompt]) -> np.ndarray:
        """[n, hidden]: each prompt's mean theta_0 hidden state."""
        return self._do("run_features", self.prompt_ids(prompts), [()] * len(prompts))

    def run_features(self, prompt_ids: list, completion_ids: list) -> np.ndarray:
        """`features` on token ids (cached; batches spread over `shards`)."""
        return self.feature_extractor.features(prompt_ids, completion_ids)

    def prompt_ids(self, prompts: Sequence[Prompt]) -> list[tuple[int, ...]]:
        """Token ids of each prompt via `encode_prompts`, encoded once per distinct text."""
        new = [t for t in dict.fromkeys(p.text for p in prompts) if t not in self._prompt_ids]
        if new:
            encoded = encode_prompts(self.tokenizer, new)
            self._prompt_ids.update(zip(new, map(tuple, encoded), strict=True))
        return [self._prompt_ids[p.text] for p in prompts]

    def sample(
        self,
        prompts: list[Prompt],
        num_samples: int,
        temperature: float | None = None,
        *,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """`num_samples` completions per prompt at `temperature` (None: the run's), with logp.

        Prompt p's samples are fixed by (`seed`, p.uid); without `seed`, the call's seed is the
        next draw from `generator`.
        """
        if seed is None:
            seed = seeds_from(self.generator, 1)[0]
        gen = self.generation
        return self._do(
            "run_sample",
            [list(ids) for ids in self.prompt_ids(prompts)],
            prompt_seeds(seed, [p.uid for p in prompts]),
            num_samples,
            gen.temperature if temperature is None else temperature,
        )

    def run_sample(
        self, prompt_ids: list[list[int]], seeds: list[int], num_samples: int, temperature: float
    ) -> list[list[Completion]]:
        """`sample` on token ids and per-prompt seeds (batches spread over `shards`)."""
        gen = self.generation
        return sample_completions(
            self.model,
            self.tokenizer,
            prompt_ids,
            num_samples=num_samples,
            temperature=temperature,
            min_new_tokens=gen.min_new_tokens,
            max_new_tokens=gen.max_new_tokens,
            batch_size=gen.batch_size,
            autocast_dtype=self.autocast_dtype,
            compile=self.compile,
            stop=gen.stop,
            seeds=seeds,
            shards=self.shards,
        )

    def policy_and_reference_logps(
        self, prompts: list[Prompt], completions: list[Completion]
    ) -> tuple[list[float], list[float]]:
        """(log p_policy, log p_ref) per aligned row from one computation: same batches, same dtype."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return self._do("run_paired", self.prompt_ids(prompts), [c.token_ids for c in completions])

    def run_paired(self, prompt_ids: list, completion_ids: list) -> tuple[list[float], list[float]]:
        """`policy_and_reference_logps` on token ids (chunks spread over the reference's shards)."""
        return self.reference.paired_logps(self.model, prompt_ids, completion_ids)
