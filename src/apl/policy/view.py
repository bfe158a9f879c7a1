"""The PolicyView acquisition scores through: the live policy's sampler plus the cached reference.

Acquisition never runs a scoring pass of the policy: `sample` returns each completion's
untempered log-prob from generation, and `reference_logps` goes through the `ReferenceModel`,
which computes each (prompt, completion) once and caches it for training to reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from apl.config import GenerationConfig
from apl.policy.sampling import encode_prompts, sample_completions
from apl.types import Completion, Prompt

logger = logging.getLogger(__name__)


class ModelPolicyView:
    """`apl.acquisition.PolicyView` over a Hugging Face policy and its `ReferenceModel`.

    Args:
        reference: anything with `logps(prompt_ids, completion_ids) -> list[float]` (cached).
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
        self._prompt_ids: dict[str, tuple[int, ...]] = {}

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
        )

    def reference_logps(self, prompts: list[Prompt], completions: list[Completion]) -> list[float]:
        """log p_ref(completion | prompt) per aligned row, from the reference's cache when known."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return list(
            self.reference.logps(self.prompt_ids(prompts), [c.token_ids for c in completions])
        )
