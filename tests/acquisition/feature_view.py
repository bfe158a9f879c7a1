"""A scripted PolicyView with hand-placed frozen features and paid labels, for bald and balpm.

Real features come from the reference model (tests/policy covers `FeatureExtractor`); placing
them by hand is what lets these tests know which pair an ensemble should be unsure of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apl.types import Completion, Preference, Prompt

from .scripted_view import Scripted, ScriptedView


@dataclass
class FeatureView(ScriptedView):
    """ScriptedView plus `features` by completion text and `prompt_features` by prompt uid."""

    completion_features: dict[str, np.ndarray] = field(default_factory=dict)
    prompt_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    labelled: list[Preference] = field(default_factory=list)
    feature_calls: int = 0

    def features(self, prompts: list[Prompt], completions: list[Completion]) -> np.ndarray:
        self.feature_calls += 1
        return np.stack([self.completion_features[c.text] for c in completions])

    def prompt_features(self, prompts: list[Prompt]) -> np.ndarray:
        return np.stack([self.prompt_vectors[p.uid] for p in prompts])


def labelled_pairs(direction: np.ndarray, n: int, rng: np.random.Generator, view: FeatureView):
    """`n` paid labels whose chosen completion sits `direction` away from the rejected one."""
    for i in range(n):
        base = rng.normal(size=len(direction))
        prompt = Prompt(f"l{i}", f"labelled {i}")
        chosen = Completion(f"l{i}|chosen", (1,))
        rejected = Completion(f"l{i}|rejected", (2,))
        view.completion_features[chosen.text] = base + direction + 0.1 * rng.normal(size=len(base))
        view.completion_features[rejected.text] = base
        view.prompt_vectors[prompt.uid] = rng.normal(size=len(direction))
        view.labelled.append(Preference(prompt, chosen, rejected))


def scripted_table(n: int) -> dict[str, dict]:
    """n prompts with equal-reward pairs (rewards do not matter to bald/balpm's ranking)."""
    return {f"p{i}": {"a": Scripted(-1.0), "b": Scripted(-1.0)} for i in range(n)}
