"""Pseudo-labels: candidates an acquisition marked to train on the policy's own preference.

`adpo` marks its confident pairs with `extras["pseudo_label"]` (1.0: a preferred, 0.0: b). The
oracle never sees them: `paid_candidates` leaves them out of labelling, and
`record_pseudo_labels` stores the policy's choice as a verdict with source "pseudo" (cost 0,
judge id `pseudo:implicit-reward`), which training uses and every count of paid labels, spend,
`apl status`, the report and the export keep apart.
"""

from __future__ import annotations

from apl.acquisition.adpo import PSEUDO_LABEL
from apl.store.ledger import Candidate, Ledger
from apl.types import Judgement, Verdict

PSEUDO_JUDGE_ID = "pseudo:implicit-reward"


def paid_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates for the oracle, in rank order: every one not marked as a pseudo-label."""
    return [c for c in candidates if PSEUDO_LABEL not in c.pair.extras]


def record_pseudo_labels(ledger: Ledger, candidates: list[Candidate]) -> int:
    """Store each marked candidate's pseudo-label once (idempotent); returns how many are held."""
    held = 0
    for candidate in candidates:
        mark = candidate.pair.extras.get(PSEUDO_LABEL)
        if mark is None:
            continue
        verdict = Verdict.A if mark >= 0.5 else Verdict.B
        p = candidate.pair.extras.get("bt_prob", mark)
        judgement = Judgement(
            verdict=verdict,
            rationale=(
                f"Pseudo-label: the policy's implicit reward prefers {verdict.value} "
                f"(P(a > b) = {p:.3f}); not an oracle verdict.\nPreferred: {verdict.value}"
            ),
            judge_id=PSEUDO_JUDGE_ID,
            probability=p,
        )
        ledger.record_verdict(candidate.id, judgement, source="pseudo")
        held += 1
    return held
