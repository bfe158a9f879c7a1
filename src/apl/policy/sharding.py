"""Split a list of work items over the ranks of a process group, and give every rank every result.

The sampler, the reference, the policy's scoring and the feature extractor each cut their work
into items that a single process would run one after another (length-sorted batches, reference
chunks). `Shards.map` runs item i on rank i % world and all-gathers the results in item order,
so each item is computed exactly as one process computes it, only somewhere else: results do
not depend on the number of ranks. With one process (`LOCAL`) it is a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Shards:
    """This process's place among `world` ranks; `group` is the process group that gathers."""

    rank: int = 0
    world: int = 1
    group: Any = None  # a torch.distributed ProcessGroup (gloo), or None for the default group

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """[fn(item) for item in items], with item i run on rank i % world; a collective.

        Every rank must call it with the same number of items, in the same order of calls.
        """
        if self.world == 1:
            return [fn(item) for item in items]
        import torch.distributed as dist

        mine = [fn(items[i]) for i in range(self.rank, len(items), self.world)]
        parts: list[list[R] | None] = [None] * self.world
        dist.all_gather_object(parts, mine, group=self.group)
        out: list[R] = [None] * len(items)  # type: ignore[list-item]
        for rank, part in enumerate(parts):
            assert part is not None
            for j, value in enumerate(part):
                out[rank + j * self.world] = value
        return out


LOCAL = Shards()  # one process: every item here, no collective
