"""Wall time per phase of a run, and a PolicyView wrapper that times sampling and scoring apart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Wall time per phase (generate, score, label, train, evaluate), summed over rounds."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def time(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to `phase`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[phase] = self.totals.get(phase, 0.0) + time.perf_counter() - start


class TimedView:
    """Wraps the PolicyView so acquisition's sampling and reward scoring are timed apart."""

    def __init__(self, view, timer: PhaseTimer) -> None:
        self._view, self._timer = view, timer

    def __getattr__(self, name: str):
        return getattr(self._view, name)

    def __setattr__(self, name: str, value) -> None:
        if name in ("_view", "_timer"):
            object.__setattr__(self, name, value)
        else:  # e.g. the loop reseeding `generator`: it belongs to the wrapped view
            setattr(self._view, name, value)

    def sample(self, prompts, num_samples, temperature=None):
        """Time the policy's sampling as `generate`."""
        with self._timer.time("generate"):
            return self._view.sample(prompts, num_samples, temperature)

    def policy_and_reference_logps(self, prompts, completions):
        """Time the reward scoring passes (policy and reference) as `score`."""
        with self._timer.time("score"):
            return self._view.policy_and_reference_logps(prompts, completions)
