"""Buy labels for a round's ranked candidates: top M first, refilling past ties and invalid verdicts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apl.errors import APLError, LabelsPendingError
from apl.oracles import JudgeRequest, Oracle
from apl.store.fs import ensure_free_space
from apl.store.ledger import Candidate, Ledger
from apl.types import Judgement, Verdict

logger = logging.getLogger(__name__)

USABLE = (Verdict.A, Verdict.B)  # a tie or an invalid verdict teaches DPO nothing


@dataclass(frozen=True)
class LabelStats:
    """How a round's labelling went."""

    usable: int  # A/B verdicts: the pairs DPO trains on
    asked: int  # candidates with any verdict
    dropped: int  # ties and invalid verdicts, refilled from the next-best candidates
    exhausted: bool  # True if the candidates ran out before `query_size` usable labels


def _request(candidate: Candidate) -> JudgeRequest:
    pair = candidate.pair
    return JudgeRequest(pair.prompt.judge_text, pair.a.text, pair.b.text)


def label_round(
    ledger: Ledger,
    oracle: Oracle,
    candidates: list[Candidate],
    query_size: int,
    on_progress: Callable[[int], None] | None = None,
    storage: tuple[Path, ...] = (),
) -> LabelStats:
    """Walk candidates in rank order until `query_size` usable verdicts are held.

    Verdicts already in the ledger are reused (a resumed run never asks again); each new one
    is committed the moment its batch returns, and a judge error (budget, API failure) first
    commits every judgement it completed. Because each step asks for exactly the number of
    labels still missing, the labelled set is the shortest rank prefix holding `query_size`
    usable verdicts, whether or not the run was interrupted. `storage` lists the directories
    (run dir, judgement cache) whose disks must have room before each call is paid for.
    """
    held = {c.id: j for c, j in ((c, ledger.verdict_for(c.id)) for c in candidates) if j}
    usable = sum(j.verdict in USABLE for j in held.values())
    position = 0
    while usable < query_size:
        todo: list[Candidate] = []
        while len(todo) < query_size - usable and position < len(candidates):
            candidate = candidates[position]
            position += 1
            if candidate.id not in held:
                todo.append(candidate)
        if not todo:
            break
        # Ask in chunks the judge runs at once, so the ledger holds each verdict as it arrives.
        step = max(1, oracle.concurrency)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            ensure_free_space(*storage)  # before paying: a verdict must have somewhere to go
            try:
                judgements = oracle.judge_batch([_request(c) for c in chunk])
            except APLError as err:
                saved = _record(ledger, chunk, getattr(err, "partial", None) or [], held)
                # Waiting for people is no failure: the run stops cleanly and resumes later.
                log = logger.info if isinstance(err, LabelsPendingError) else logger.error
                log("Judge stopped; its %d verdicts of this chunk are saved.", saved)
                raise
            _record(ledger, chunk, judgements, held)
        usable = sum(j.verdict in USABLE for j in held.values())
        if on_progress is not None:
            on_progress(min(usable, query_size))
    dropped = sum(j.verdict not in USABLE for j in held.values())
    # The caller decides what a shortfall means (the loop tops the round up; see loop/top_up.py).
    return LabelStats(usable, len(held), dropped, usable < query_size)


def _record(
    ledger: Ledger,
    todo: list[Candidate],
    judgements: list[Judgement | None],
    held: dict[int, Judgement],
) -> int:
    saved = 0
    for candidate, judgement in zip(todo, judgements, strict=False):
        if judgement is None:
            continue
        ledger.record_verdict(candidate.id, judgement)
        held[candidate.id] = ledger.verdict_for(candidate.id) or judgement
        saved += 1
    return saved
