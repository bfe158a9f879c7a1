"""The PolicyView acquisition scores through: the live policy's sampler plus the cached reference.

`sample` returns each completion's untempered log-prob from generation (entropy uses it).
`policy_and_reference_logps` (implicit rewards) scores the policy and the reference over the
same batches at the same precision through `ReferenceModel.paired_logps`, which computes each
reference log-prob once and caches it for training to reuse.

Feature-space acquisitions (an ensemble preference model, BAL-PM's prompt diversity) also read
`labelled` (the paid preferences so far, set by the loop before each acquisition) and
`features` / `prompt_features` (frozen theta_0 hidden states, cached; `apl.policy.features`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from apl.config import GenerationConfig
from apl.policy.features import FeatureExtractor
from apl.policy.sampling import encode_prompts, sample_completions
from apl.types import Completion, Preference, Prompt

logger = logging.getLogger(__name__)


class ModelPolicyView:
    """`apl.acquisition.PolicyView` over a Hugging Face policy and its `ReferenceModel`.

    Args:
        reference: the `ReferenceModel` (its `paired_logps` scores policy and reference).
        generation: the run's sampling settings; its temperature is used when none is given.
        generator: torch RNG for sampling, so a seeded run acquires the same pairs.
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
        return self._features

    @property
    def feature_sequences(self) -> int:
        """Rows the feature extractor has run (0 if no strategy asked for features)."""
        return 0 if self._features is None else self._features.sequences

    def features(self, prompts: list[Prompt], completions: list[Completion]) -> np.ndarray:
        """[n, hidden]: each completion's mean theta_0 hidden state, its prompt as context."""
        ids = self.prompt_ids(prompts)
        return self.feature_extractor.features(ids, [c.token_ids for c in completions])

    def prompt_features(self, prompts: list[Prompt]) -> np.ndarray:
        """[n, hidden]: each prompt's mean theta_0 hidden state."""
        return self.feature_extractor.features(self.prompt_ids(prompts), [()] * len(prompts))

    def prompt_ids(self, prompts: Sequence[Prompt]) -> list[tuple[int, ...]]:
        """Token ids of each prompt via `encode_prompts`, encoded once per distinct text."""
        new = [t for t in dict.fromkeys(p.text for p in prompts) if t not in self._prompt_ids]
        if new:
            encoded = encode_prompts(self.tokenizer, new)
            self._prompt_ids.update(zip(new, map(tuple, encoded), strict=True))
        return [self._prompt_ids[p.text] for p in prompts]

    def sample(
        self, prompts: list[Prompt], num_samples: int, temperature: float | None = None
    ) -> list[list[Completion]]:
        """`num_samples` completions per prompt at `temperature` (None: the run's), with logp."""
        gen = self.generation
        return sample_completions(
            self.model,
            self.tokenizer,
            [list(ids) for ids in self.prompt_ids(prompts)],
            num_samples=num_samples,
            temperature=gen.temperature if temperature is None else temperature,
            min_new_tokens=gen.min_new_tokens,
            max_new_tokens=gen.max_new_tokens,
            batch_size=gen.batch_size,
            generator=self.generator,
            autocast_dtype=self.autocast_dtype,
            compile=self.compile,
            stop=gen.stop,
        )

    def policy_and_reference_logps(
        self, prompts: list[Prompt], completions: list[Completion]
    ) -> tuple[list[float], list[float]]:
        """(log p_policy, log p_ref) per aligned row from one computation: same batches, same dtype."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return self.reference.paired_logps(
            self.model, self.prompt_ids(prompts), [c.token_ids for c in completions]
        )
