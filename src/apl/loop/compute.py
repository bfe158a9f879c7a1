"""What each round's acquisition and training cost in compute, logged as `compute/*` metrics.

Random choice costs almost nothing; an active strategy samples and scores far more. A 2026
study (Oh et al., "Random is hard to beat", arXiv 2604.02766) found ~20x the compute for
negligible gains, so the report puts these counts beside the labels. Per round:

- `compute/sampled_sequences`, `compute/sampled_tokens`: completions generated for acquisition
  (entropy samples and candidate pairs; evaluation is the same for every strategy and excluded);
- `compute/scored_sequences`: reference forward rows (acquisition and the round's training);
- `compute/feature_sequences`: frozen-feature forward rows (bald, balpm);
- `compute/trained_pairs`: preference pairs through a DPO forward+backward (pairs x epochs);
- `time/round_acquire`, `time/round_train`: wall seconds of the round's acquisition and
  training (in `time/`, with the loop's other clocks: a resumed run counts the same work but
  not the same seconds).

A round resumed mid-phase counts only the work its last attempt did.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ComputeMeter:
    """Counters for one round, read from the view and the models' own counters."""

    counts: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        """Add to `compute/<key>`."""
        self.counts[key] = self.counts.get(key, 0.0) + value

    def metrics(self) -> dict[str, float]:
        """`compute/<key>` for everything counted."""
        return {f"compute/{k}": v for k, v in self.counts.items()}


class CountingView:
    """Wraps a PolicyView: counts sampled completions and tokens, delegates everything else."""

    def __init__(self, view, meter: ComputeMeter) -> None:
        self._view, self._meter = view, meter

    def __getattr__(self, name: str):
        return getattr(self._view, name)

    def sample(self, prompts, num_samples, temperature=None):
        """Sample through the wrapped view and count what came back."""
        out = self._view.sample(prompts, num_samples, temperature)
        self._meter.add("sampled_sequences", float(sum(len(s) for s in out)))
        self._meter.add("sampled_tokens", float(sum(c.num_tokens for s in out for c in s)))
        return out


def counter(obj, name: str) -> float:
    """A model's own counter (e.g. `sequences_scored`), 0 when it has none."""
    return float(getattr(obj, name, 0) or 0)
