"""The Oracle ABC and ORACLES registry: cache first, bounded concurrency, results in input order.

A judge implements `judge(request)`, one uncached judgement. `judge_batch` answers what it can
from the cache passed in (anything with `get(key)` / `put(key, judgement)`; oracle modules never
import `apl.store`), judges the rest on up to `concurrency` threads, and stores each answer the
moment it arrives, so a crash or an error mid-batch loses nothing that was paid for.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Protocol

from apl.errors import APLError, ConfigError
from apl.oracles.budget import SpendJournal
from apl.paths import default_cache_dir as default_cache_dir  # its old home; still importable
from apl.registry import Registry
from apl.types import Judgement, Verdict

ORDER_POLICIES = ("random", "fixed", "both")


@dataclass(frozen=True)
class JudgeRequest:
    """One comparison: a prompt and two completions, judged as 'which is better, A or B?'."""

    prompt: str
    completion_a: str
    completion_b: str
    # 0 for a normal label; 1, 2, ... ask for an independent repeat (self-consistency), which
    # has its own cache entry and its own noise draw.
    draw: int = 0


class JudgementCache(Protocol):
    """Where paid judgements live; `apl.store.judgement_cache.JudgementCache` satisfies it."""

    def get(self, key: str) -> Judgement | None:
        """The stored judgement for `key`, or None."""

    def put(self, key: str, judgement: Judgement) -> None:
        """Store a judgement; the first one stored for a key wins."""


def text_digest(*parts: str | int) -> str:
    """sha256 over length-prefixed parts, so ('ab', 'c') and ('a', 'bc') never collide."""
    h = hashlib.sha256()
    for part in parts:
        data = str(part).encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def choose_shown_order(policy: str, seed: int, request: JudgeRequest) -> str:
    """'AB', 'BA' or 'both'. `random` hashes (seed, texts), so a resumed run shows the same order;
    the draw index is left out, so a repeat (self-consistency) sees the same order."""
    if policy == "both":
        return "both"
    if policy == "fixed":
        return "AB"
    digest = text_digest("order", seed, request.prompt, request.completion_a, request.completion_b)
    return "BA" if int(digest[:8], 16) & 1 else "AB"


def cache_key(judge_id: str, request: JudgeRequest, shown_order: str) -> str:
    """The label cache key: judge identity, shown order, draw and the exact texts."""
    return text_digest(
        judge_id,
        shown_order,
        request.draw,
        request.prompt,
        request.completion_a,
        request.completion_b,
    )


def check_order_policy(order: str) -> None:
    """Raise ConfigError for an unknown `order`."""
    if order not in ORDER_POLICIES:
        raise ConfigError(f"order {order!r} is unknown; use one of {', '.join(ORDER_POLICIES)}.")


class JudgeStats:
    """Counters for one judge, read as `judge/*` metrics; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"calls": 0, "retries": 0, "cache_hits": 0, "judged": 0, "invalid": 0}
        self.counts.update(both_pairs=0, order_flips=0)
        self.cost_usd = 0.0

    def add(self, **increments: int) -> None:
        """Increase named counters."""
        with self._lock:
            for name, value in increments.items():
                self.counts[name] += value

    def add_cost(self, usd: float) -> None:
        """Add the cost of one settled call."""
        with self._lock:
            self.cost_usd += usd

    def metrics(self) -> dict[str, float]:
        """`judge/<quantity>`: calls, retries, cache hits, invalid, order flip rate, spend."""
        with self._lock:
            out: dict[str, float] = {f"judge/{k}": float(v) for k, v in self.counts.items()}
            pairs = self.counts["both_pairs"]
            out["judge/flip_rate"] = self.counts["order_flips"] / pairs if pairs else 0.0
            out["judge/spent_usd"] = self.cost_usd
            return out


class Oracle(ABC):
    """A judge of (prompt, A, B). Subclasses set `judge_id` and implement `judge`."""

    registry_name: str
    judge_id: str = ""
    concurrency: int = 1
    # The constructor option that `apl judge consistency --temperature` varies.
    temperature_option: str = "temperature"

    def __init__(self, cache: JudgementCache | None = None, seed: int = 0) -> None:
        self.cache = cache
        self.seed = seed
        self.stats = JudgeStats()

    def use_spend_journal(self, journal: SpendJournal) -> None:
        """Count this judge's paid calls in `journal` (the run's ledger); free judges ignore it."""

    @abstractmethod
    def judge(self, request: JudgeRequest) -> Judgement:
        """One uncached judgement (may call an API, a model or a person)."""

    def shown_order(self, request: JudgeRequest) -> str:
        """The order this judge shows the pair in ('AB' unless the judge has an order policy)."""
        return "AB"

    def begin(self, round: int | None, purpose: str) -> None:
        """Told by the loop what the next batches are for ('label' / 'eval' of a round)."""

    def evaluation_judge(self) -> Oracle:
        """The judge for win-rate evaluation: this one, unless the judge names another."""
        return self

    def key(self, request: JudgeRequest) -> str:
        """This request's cache key."""
        return cache_key(self.judge_id, request, self.shown_order(request))

    def judge_batch(self, requests: list[JudgeRequest]) -> list[Judgement]:
        """Judge many requests: cache first, each miss judged once, results in input order.

        A request may also be a plain (prompt, completion_a, completion_b) tuple.

        An APLError (budget, API failure) is re-raised after in-flight calls finish and are
        cached; `err.partial` holds the judgements done so far (None where none).
        """
        requests = [r if isinstance(r, JudgeRequest) else JudgeRequest(*r) for r in requests]
        results: list[Judgement | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}  # key -> positions; duplicates are judged once
        for i, request in enumerate(requests):
            key = self.key(request)
            hit = self.cache.get(key) if self.cache is not None and key not in pending else None
            if hit is not None:
                # A hit used nothing this time: zero cost, tokens and latency.
                results[i] = replace(
                    hit,
                    from_cache=True,
                    cost_usd=0.0,
                    prompt_tokens=0,
                    completion_tokens=0,
                    latency_s=0.0,
                    retries=0,
                )
                self.stats.add(cache_hits=1)
            else:
                pending.setdefault(key, []).append(i)
        keys = list(pending)

        def done(index: int, judgement: Judgement) -> None:
            key = keys[index]
            if self.cache is not None:
                self.cache.put(key, judgement)
            self.stats.add(judged=1, invalid=int(judgement.verdict is Verdict.INVALID))
            for position in pending[key]:
                results[position] = judgement

        try:
            self.judge_many([requests[pending[k][0]] for k in keys], done)
        except APLError as err:
            err.partial = results  # type: ignore[attr-defined]
            raise
        return results  # type: ignore[return-value]

    def judge_many(
        self, requests: list[JudgeRequest], done: Callable[[int, Judgement], None]
    ) -> None:
        """Judge uncached requests on `concurrency` threads, calling `done(i, j)` as each ends.

        `done` runs on the calling thread. On the first error, requests not yet started are
        cancelled, the ones in flight are awaited and reported, then the error is raised.
        """
        if self.concurrency <= 1 or len(requests) <= 1:
            for i, request in enumerate(requests):
                done(i, self.judge(request))
            return
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self.judge, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    done(futures[future], future.result())
                except BaseException as exc:  # noqa: BLE001 - re-raised below, after cleanup
                    if error is None:
                        error = exc
                        for other in futures:
                            other.cancel()
        if error is not None:
            raise error


ORACLES: Registry[Oracle] = Registry("oracle")
