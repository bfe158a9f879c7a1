"""The run ledger: every scored candidate pair, every paid verdict, metrics, all in SQLite.

One transaction per step, so a kill -9 at any instant leaves a consistent store: a round's
candidates are saved all or nothing, and each verdict is committed the moment it arrives.
A stored verdict is never overwritten: the first (paid) answer wins and a second write for
the same candidate is ignored (`record_verdict` returns False). Evaluation tables live in
`EvalRecords` (eval_records.py) and metrics/spend/status in `ProgressRecords`
(progress.py); `Ledger` extends both.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apl.store.eval_records import EvalRecords
from apl.store.fs import guarded, storage_errors
from apl.store.ledger_schema import (
    JUDGEMENT_FIELDS,
    JUDGEMENT_PLACEHOLDERS,
    PHASES,
    SOURCES,
    connect,
    decode_completion,
    encode_ids,
    encode_messages,
    judgement_from_row,
    judgement_values,
    prompt_from_row,
    transaction,
)
from apl.store.progress import ProgressRecords, RunStatus, Spend
from apl.types import Judgement, Pair, Preference, Verdict

__all__ = ["Candidate", "LabelledPair", "Ledger", "RunStatus", "Spend"]

logger = logging.getLogger(__name__)

_guarded = guarded("use the ledger")


@dataclass(frozen=True)
class Candidate:
    """A stored candidate pair: its ledger id, round and rank (0 = acquired first)."""

    id: int
    round: int
    rank: int
    pair: Pair


@dataclass(frozen=True)
class LabelledPair:
    """A candidate whose verdict was A or B, as a DPO preference plus where it came from."""

    candidate_id: int
    round: int
    rank: int
    score: float | None
    preference: Preference
    judgement: Judgement
    source: str = "oracle"  # "pseudo": the policy's own preference, never a paid label


_CANDIDATE_COLUMNS = (
    "round, rank, prompt_uid, prompt_text, prompt_reference, prompt_label, "
    "a_text, a_token_ids, a_logp, b_text, b_token_ids, b_logp, "
    "ref_logp_a, ref_logp_b, score, extras, prompt_messages"
)


def _pair_from_row(row: Any) -> Pair:
    return Pair(
        prompt=prompt_from_row(row),
        a=decode_completion(row["a_text"], row["a_token_ids"], row["a_logp"]),
        b=decode_completion(row["b_text"], row["b_token_ids"], row["b_logp"]),
        ref_logp_a=row["ref_logp_a"],
        ref_logp_b=row["ref_logp_b"],
        score=row["score"],
        extras=json.loads(row["extras"]),
    )


class Ledger(EvalRecords, ProgressRecords):
    """The SQLite ledger of one run (`RUN_DIR/ledger.sqlite`); use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with storage_errors("open the ledger", self.path):
            self._conn = connect(self.path)

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- rounds -------------------------------------------------------------------------

    @_guarded
    def phase(self, round: int) -> str | None:
        """The round's phase marker, or None if its candidates were never saved."""
        row = self._conn.execute("SELECT phase FROM rounds WHERE round = ?", (round,)).fetchone()
        return row[0] if row else None

    @_guarded
    def rounds(self) -> dict[int, str]:
        """Every started round and its phase, in round order."""
        rows = self._conn.execute("SELECT round, phase FROM rounds ORDER BY round")
        return {r: p for r, p in rows}

    @_guarded
    def set_phase(self, round: int, phase: str) -> None:
        """Advance a round to `phase` (see PHASES); going back is a bug and raises ValueError."""
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {PHASES}")
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT phase FROM rounds WHERE round = ?", (round,)
            ).fetchone()
            if row is None:
                raise ValueError(f"round {round} has no saved candidates; save them first")
            if PHASES.index(phase) < PHASES.index(row[0]):
                raise ValueError(
                    f"round {round} is already {row[0]!r}; cannot go back to {phase!r}"
                )
            self._conn.execute(
                "UPDATE rounds SET phase = ?, updated_at = ? WHERE round = ?",
                (phase, time.time(), round),
            )

    # --- candidates and verdicts ---------------------------------------------------------

    @_guarded
    def save_candidates(self, round: int, pairs: Sequence[Pair]) -> list[Candidate]:
        """Save a round's ranked pairs (best first) in one transaction; phase -> `candidates`.

        Raises ValueError if the round already has candidates: a resumed loop reads them back
        with `candidates(round)` instead of scoring again.
        """
        with transaction(self._conn):
            if self._conn.execute("SELECT 1 FROM rounds WHERE round = ?", (round,)).fetchone():
                raise ValueError(
                    f"round {round} already has candidates; read them with candidates()"
                )
            self._conn.execute(
                "INSERT INTO rounds VALUES (?, 'candidates', ?)", (round, time.time())
            )
            self._insert_candidates(round, pairs, first_rank=0)
        return self.candidates(round)

    @_guarded
    def add_candidates(self, round: int, pairs: Sequence[Pair]) -> list[Candidate]:
        """Append ranked pairs after a round's last rank, in one transaction (a top-up).

        Only while the round is still being labelled (phase `candidates`); raises ValueError
        otherwise. Returns the round's candidates, old and new, in rank order.
        """
        with transaction(self._conn):
            row = self._conn.execute(
                "SELECT phase FROM rounds WHERE round = ?", (round,)
            ).fetchone()
            if row is None or row[0] != "candidates":
                state = "has no candidates" if row is None else f"is already {row[0]!r}"
                raise ValueError(f"round {round} {state}; only a round being labelled grows")
            (last,) = self._conn.execute(
                "SELECT MAX(rank) FROM candidates WHERE round = ?", (round,)
            ).fetchone()
            self._insert_candidates(round, pairs, first_rank=0 if last is None else last + 1)
        return self.candidates(round)

    def _insert_candidates(self, round: int, pairs: Sequence[Pair], first_rank: int) -> None:
        rows = [
            (
                round,
                first_rank + rank,
                p.prompt.uid,
                p.prompt.text,
                p.prompt.reference,
                p.prompt.label,
                p.a.text,
                encode_ids(p.a.token_ids),
                p.a.logp,
                p.b.text,
                encode_ids(p.b.token_ids),
                p.b.logp,
                p.ref_logp_a,
                p.ref_logp_b,
                p.score,
                json.dumps(p.extras),
                encode_messages(p.prompt.messages),
            )
            for rank, p in enumerate(pairs)
        ]
        self._conn.executemany(
            f"INSERT INTO candidates ({_CANDIDATE_COLUMNS}) VALUES ({', '.join('?' * 17)})",
            rows,
        )

    @_guarded
    def candidates(self, round: int) -> list[Candidate]:
        """The round's candidates in rank order (empty if none were saved)."""
        rows = self._conn.execute(
            "SELECT * FROM candidates WHERE round = ? ORDER BY rank", (round,)
        ).fetchall()
        return [Candidate(r["id"], r["round"], r["rank"], _pair_from_row(r)) for r in rows]

    @_guarded
    def record_verdict(
        self, candidate_id: int, judgement: Judgement, source: str = "oracle"
    ) -> bool:
        """Commit one verdict now; False (and nothing written) if the candidate already has one.

        `source="pseudo"` marks the policy's own preference (active-query acquisition): it
        trains like a label but is never counted as a paid label or in spend.
        """
        if source not in SOURCES:
            raise ValueError(f"verdict source {source!r} is not one of {SOURCES}")
        with transaction(self._conn):
            cur = self._conn.execute(
                f"INSERT OR IGNORE INTO verdicts (candidate_id, {JUDGEMENT_FIELDS}, source) "
                f"VALUES (?, {JUDGEMENT_PLACEHOLDERS}, ?)",
                (candidate_id, *judgement_values(judgement), source),
            )
        if cur.rowcount == 0:
            kept = self.verdict_for(candidate_id)
            if kept is not None and kept.verdict != Verdict(judgement.verdict):
                logger.warning(
                    "Candidate %d already holds verdict %s; ignoring the new %s (first wins).",
                    candidate_id,
                    kept.verdict.value,
                    Verdict(judgement.verdict).value,
                )
            return False
        return True

    @_guarded
    def verdict_for(self, candidate_id: int) -> Judgement | None:
        """The stored verdict for a candidate, or None if the oracle was never asked."""
        row = self._conn.execute(
            "SELECT * FROM verdicts WHERE candidate_id = ?", (candidate_id,)
        ).fetchone()
        return judgement_from_row(row) if row else None

    @_guarded
    def verdicts(self, round: int) -> dict[int, Judgement]:
        """The round's stored verdicts by candidate id."""
        rows = self._conn.execute(
            "SELECT v.* FROM verdicts v JOIN candidates c ON c.id = v.candidate_id "
            "WHERE c.round = ? ORDER BY c.rank",
            (round,),
        )
        return {r["candidate_id"]: judgement_from_row(r) for r in rows}

    @_guarded
    def labelled(
        self, up_to_round: int | None = None, source: str | None = None
    ) -> list[LabelledPair]:
        """Pairs with an A or B verdict, ordered by (round, rank); ties and invalid are excluded.

        Paid labels and pseudo-labels alike unless `source` ("oracle" or "pseudo") picks one.
        """
        rows = self._conn.execute(
            "SELECT c.*, v.* FROM candidates c JOIN verdicts v ON v.candidate_id = c.id "
            "WHERE v.verdict IN ('A', 'B') AND (? IS NULL OR c.round <= ?) "
            "AND (? IS NULL OR v.source = ?) ORDER BY c.round, c.rank",
            (up_to_round, up_to_round, source, source),
        ).fetchall()
        out = []
        for row in rows:
            pair, judgement = _pair_from_row(row), judgement_from_row(row)
            a_wins = judgement.verdict is Verdict.A
            preference = Preference(
                prompt=pair.prompt,
                chosen=pair.a if a_wins else pair.b,
                rejected=pair.b if a_wins else pair.a,
                ref_logp_chosen=pair.ref_logp_a if a_wins else pair.ref_logp_b,
                ref_logp_rejected=pair.ref_logp_b if a_wins else pair.ref_logp_a,
            )
            out.append(
                LabelledPair(
                    row["id"],
                    row["round"],
                    row["rank"],
                    pair.score,
                    preference,
                    judgement,
                    row["source"],
                )
            )
        return out

    def preferences(
        self, up_to_round: int | None = None, source: str | None = None
    ) -> list[Preference]:
        """The training set as DPO preferences, in (round, rank) order; ties/invalid excluded.

        Pseudo-labels are included (they train) unless `source` picks one kind.
        """
        return [item.preference for item in self.labelled(up_to_round, source)]

    @_guarded
    def label_counts(self) -> tuple[int, int]:
        """(paid A/B labels, pseudo-labels) held: the labelled-set size counts only the first."""
        rows = dict(
            self._conn.execute(
                "SELECT source, COUNT(*) FROM verdicts WHERE verdict IN ('A', 'B') GROUP BY source"
            ).fetchall()
        )
        return rows.get("oracle", 0), rows.get("pseudo", 0)

    @_guarded
    def meta(self, key: str) -> str | None:
        """A run-level value from the `meta` table (e.g. `numerics`), or None if never set."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @_guarded
    def set_meta(self, key: str, value: str) -> None:
        """Set a run-level value in the `meta` table (replacing it) in one transaction."""
        with transaction(self._conn):
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @_guarded
    def replace_ref_logps(
        self, values: dict[int, tuple[float, float]], meta: dict[str, str]
    ) -> None:
        """Overwrite candidates' (ref_logp_a, ref_logp_b) and set `meta`, all in ONE transaction.

        For recomputing every stored reference log-prob at a new precision: a crash leaves
        either all old values with the old meta or all new values with the new meta.
        """
        with transaction(self._conn):
            self._conn.executemany(
                "UPDATE candidates SET ref_logp_a = ?, ref_logp_b = ? WHERE id = ?",
                [(a, b, candidate_id) for candidate_id, (a, b) in values.items()],
            )
            self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())

    @_guarded
    def acquired_prompt_uids(self) -> set[str]:
        """Uids of prompts the oracle was asked about (any verdict): never sample them again."""
        rows = self._conn.execute(
            "SELECT DISTINCT c.prompt_uid FROM candidates c "
            "JOIN verdicts v ON v.candidate_id = c.id"
        )
        return {r[0] for r in rows}
