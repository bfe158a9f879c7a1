"""People as the judge: each batch becomes a queue in the run's ledger that a labelling page serves.

`judge_many` queues the batch (each pair in a seeded random shown order, stored with it) and
waits until every pair holds `annotators_per_pair` answers that are older than the undo window,
then turns each pair's answers into one verdict by `rule` and hands it back, so the loop stores
it like any other judge's. The queue is passed in (`attach`); this module never imports the
store or the web server. If `timeout_s` passes first, it raises LabelsPendingError: answers given
so far stay in the ledger and `apl resume` picks up the wait.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from apl.errors import ConfigError, LabelsPendingError
from apl.oracles.base import (
    ORACLES,
    JudgementCache,
    JudgeRequest,
    Oracle,
    check_order_policy,
    choose_shown_order,
)
from apl.oracles.prompts import load_template
from apl.types import Judgement, QueueItem, Verdict

logger = logging.getLogger(__name__)

RULES = ("majority", "unanimous")
_VERDICTS = {"A": Verdict.A, "B": Verdict.B, "tie": Verdict.TIE}


class LabelQueueLike(Protocol):
    """What the judge needs from the queue; `apl.store.label_queue.LabelQueue` satisfies it."""

    def open_pairs(self, items: Sequence[Any]) -> list[int]:
        """Queue pairs (idempotent by key); their ids."""

    def states(self, ids: Sequence[int]) -> dict[int, Any]:
        """Pair states with their answers."""

    def decide(self, pair_id: int, verdict: str, seen: Sequence[Any]) -> bool:
        """Record a verdict if the answers are still `seen`."""


def decide_verdict(choices: Sequence[str], rule: str | float) -> Verdict:
    """One verdict from annotators' choices (A, B, tie, skip): `rule` says how, else INVALID.

    `majority`: a choice that more than half of all answers gave (a skip counts as an answer
    for nothing); `unanimous`: every answer the same and not a skip; a number r in (0.5, 1]:
    a choice that at least that share of the answers gave (an agreement rate).
    """
    if not choices:
        return Verdict.INVALID
    top, count = Counter(choices).most_common(1)[0]
    if top == "skip":
        return Verdict.INVALID
    if rule == "unanimous":
        return _VERDICTS[top] if count == len(choices) else Verdict.INVALID
    if rule == "majority":
        return _VERDICTS[top] if count * 2 > len(choices) else Verdict.INVALID
    return _VERDICTS[top] if count >= float(rule) * len(choices) else Verdict.INVALID


def check_rule(rule: str | float) -> None:
    """Raise ConfigError unless `rule` is majority, unanimous or a share in (0.5, 1]."""
    if isinstance(rule, bool) or not (
        rule in RULES or (isinstance(rule, int | float) and 0.5 < rule <= 1)
    ):
        raise ConfigError(
            f"oracle.rule {rule!r} is unknown; use majority, unanimous, or the share of answers "
            "that must agree, a number above 0.5 and at most 1 (e.g. 0.75)."
        )


@ORACLES.register("web")
class WebJudge(Oracle):
    """Annotators in a browser (`apl label serve`), or a labelling tool's import, as the judge."""

    temperature_option = ""  # people have no temperature knob
    concurrency = 1 << 20  # the loop hands over a whole batch at once: people label in parallel

    def __init__(
        self,
        annotators_per_pair: int = 1,  # k distinct people answer each pair before it counts
        rule: str | float = "majority",  # majority | unanimous | a share such as 0.75
        timeout_s: float | None = None,  # wait for a batch this long (None: until it is in)
        undo_window_s: float = 10.0,  # an answer can be undone this long before it is used
        poll_s: float = 1.0,  # how often the waiting run looks at the queue
        serve: bool = True,  # the run serves the labelling page itself while it runs
        host: str = "127.0.0.1",  # loopback only unless told otherwise (docs/LABELLING.md)
        port: int = 8765,
        order: str = "random",  # random | fixed: the side each completion is shown on
        template: str = "sentiment",  # its question is the instruction shown above the pair
        eval_judge: dict | None = None,  # e.g. {name: imdb_judge}: win-rate by a machine judge
        cache: JudgementCache | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(cache=cache, seed=seed)
        check_order_policy(order)
        if order == "both":
            raise ConfigError("oracle.order 'both' would ask the same person twice; use random.")
        if annotators_per_pair < 1:
            raise ConfigError(
                f"oracle.annotators_per_pair ({annotators_per_pair}) must be at least 1."
            )
        check_rule(rule)
        if timeout_s is not None and timeout_s < 0:
            raise ConfigError(f"oracle.timeout_s ({timeout_s}) must be >= 0 or null (no limit).")
        if undo_window_s < 0 or poll_s <= 0:
            raise ConfigError(
                f"oracle.undo_window_s ({undo_window_s}) must be >= 0 and oracle.poll_s "
                f"({poll_s}) > 0."
            )
        if not 1 <= port <= 65535:
            raise ConfigError(f"oracle.port ({port}) must be between 1 and 65535.")
        self.annotators_per_pair, self.rule = annotators_per_pair, rule
        self.timeout_s, self.undo_window_s, self.poll_s = timeout_s, undo_window_s, poll_s
        self.serve, self.host, self.port, self.order = serve, host, port, order
        self.template = load_template(template)
        self.instruction = self.template.user.strip().splitlines()[0]
        self.judge_id = (
            f"web|tpl={self.template.digest}|order={order}|k={annotators_per_pair}|rule={rule}"
        )
        self.queue: LabelQueueLike | None = None
        self.round: int | None = None
        self.purpose = "label"
        self._eval = self._build_eval_judge(eval_judge, template) if eval_judge else None

    def _build_eval_judge(self, spec: dict, template: str) -> Oracle:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ConfigError(
                f"oracle.eval_judge ({spec!r}) must be a mapping with a `name`, e.g. "
                "{name: imdb_judge}."
            )
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        if spec["name"] == "web":
            raise ConfigError("oracle.eval_judge cannot be 'web'; leave it null for people.")
        kwargs.setdefault("template", template)
        return ORACLES.build(spec["name"], kwargs, cache=self.cache, seed=self.seed)

    def attach(self, queue: LabelQueueLike) -> None:
        """Give the judge the run's queue (the loop does, once the run directory is open)."""
        self.queue = queue

    def begin(self, round: int | None, purpose: str) -> None:
        """Label the next batches as `purpose` ('label' / 'eval') of `round` on the page."""
        self.round, self.purpose = round, purpose

    def evaluation_judge(self) -> Oracle:
        """`eval_judge` if one is configured, else the people themselves."""
        return self._eval or self

    def shown_order(self, request: JudgeRequest) -> str:
        """Seeded per request, so a resumed run shows every pair on the same sides."""
        return choose_shown_order(self.order, self.seed, request)

    def judge(self, request: JudgeRequest) -> Judgement:
        """Queue one pair and wait for its answers."""
        out: list[Judgement] = []
        self.judge_many([request], lambda _, j: out.append(j))
        return out[0]

    def judge_many(
        self, requests: list[JudgeRequest], done: Callable[[int, Judgement], None]
    ) -> None:
        """Queue every request, then report each pair as its answers settle, in any order."""
        if self.queue is None:
            raise ConfigError(
                "oracle 'web' labels through a run's ledger; use it in `apl run` (it has no "
                "queue outside a run)."
            )
        items = [
            QueueItem(
                self.key(r),
                self.round,
                self.purpose,
                r.prompt,
                r.completion_a,
                r.completion_b,
                self.shown_order(r),
                self.annotators_per_pair,
            )
            for r in requests
        ]
        ids = self.queue.open_pairs(items)
        pending = {pair_id: i for i, pair_id in enumerate(ids)}
        self._wait(pending, done)

    def _wait(self, pending: dict[int, int], done: Callable[[int, Judgement], None]) -> None:
        total = len(pending)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        reported = -1
        try:
            while pending:
                for pair_id, state in self.queue.states(list(pending)).items():
                    judgement = self._settled(state)
                    if judgement is not None:
                        done(pending.pop(pair_id), judgement)
                if not pending:
                    break
                if reported != len(pending):
                    reported = len(pending)
                    logger.info(
                        "%s: %d of %d pairs answered; waiting for people.",
                        self._batch_name(),
                        total - len(pending),
                        total,
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._pending_error(len(pending), total)
                left = None if deadline is None else deadline - time.monotonic()
                time.sleep(self.poll_s if left is None else max(0.0, min(self.poll_s, left)))
        except KeyboardInterrupt:
            raise self._pending_error(len(pending), total) from None

    def _settled(self, state: Any) -> Judgement | None:
        """The pair's judgement once it has its answers and the undo window has passed."""
        if state.verdict is None:
            if len(state.answers) < state.needed:
                return None
            newest = max((a.answered_at for a in state.answers if a.source == "web"), default=0)
            if time.time() - newest < self.undo_window_s:
                return None
            verdict = decide_verdict([a.choice for a in state.answers], self.rule)
            if not self.queue.decide(state.id, verdict.value, state.answers):
                return None  # the answers changed under us; next poll sees the new ones
        else:
            verdict = Verdict(state.verdict)
        said = ", ".join(f"{a.annotator} chose {a.choice}" for a in state.answers)
        return Judgement(
            verdict=verdict,
            rationale=f"{said} (rule {self.rule}, {len(state.answers)} of k={state.needed})",
            shown_order=state.shown_order,
            latency_s=float(sum(a.seconds or 0.0 for a in state.answers)),
            judge_id=self.judge_id,
        )

    def _batch_name(self) -> str:
        what = "evaluation" if self.purpose == "eval" else "labels"
        return f"Round {self.round} {what}" if self.round is not None else what.capitalize()

    def _pending_error(self, pending: int, total: int) -> LabelsPendingError:
        err = LabelsPendingError(
            f"{self._batch_name()}: {pending} of {total} queued pairs still need answers"
        )
        err.pending, err.total = pending, total  # type: ignore[attr-defined]
        return err
