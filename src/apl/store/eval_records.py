"""The ledger's evaluation tables: fixed eval prompts, baseline and policy completions, verdicts.

Every write is one transaction and first-write-wins (INSERT OR IGNORE), like label verdicts:
a resumed run reads back what it holds and only generates or buys what is missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

from apl.errors import RunStoreError
from apl.store.fs import guarded
from apl.store.ledger_schema import (
    JUDGEMENT_FIELDS,
    JUDGEMENT_PLACEHOLDERS,
    decode_completion,
    encode_ids,
    encode_messages,
    judgement_from_row,
    judgement_values,
    prompt_from_row,
    transaction,
)
from apl.types import Completion, Judgement, Prompt

_guarded = guarded("use the ledger")


class EvalRecords:
    """Evaluation storage; `Ledger` extends it (needs `path` and an open `_conn`)."""

    path: Path
    _conn: sqlite3.Connection

    @_guarded
    def save_eval_prompts(self, prompts: Sequence[Prompt]) -> None:
        """Fix the run's eval prompts once; saving the same list again is a no-op.

        A different list raises RunStoreError: the test split changed under a stored run.
        """
        with transaction(self._conn):
            stored = [
                r[0] for r in self._conn.execute("SELECT uid FROM eval_prompts ORDER BY position")
            ]
            wanted = [p.uid for p in prompts]
            if stored and stored != wanted:
                raise RunStoreError(
                    f"Ledger {self.path} already holds {len(stored)} eval prompts that differ from "
                    f"the {len(wanted)} given (first stored uid {stored[0]!r}); the test split or "
                    "evaluation.num_prompts changed: restore them or use a new output_dir."
                )
            if not stored:
                self._conn.executemany(
                    "INSERT INTO eval_prompts (position, uid, text, reference, label, messages) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (i, p.uid, p.text, p.reference, p.label, encode_messages(p.messages))
                        for i, p in enumerate(prompts)
                    ],
                )

    @_guarded
    def eval_prompts(self) -> list[Prompt]:
        """The fixed eval prompts in their stored order (empty before the first save)."""
        rows = self._conn.execute(
            "SELECT uid AS prompt_uid, text AS prompt_text, reference AS prompt_reference, "
            "label AS prompt_label, messages AS prompt_messages FROM eval_prompts "
            "ORDER BY position"
        ).fetchall()
        return [prompt_from_row(r) for r in rows]

    @_guarded
    def save_baseline(self, completions: Mapping[str, Completion]) -> None:
        """Store the baseline side by eval prompt uid (first write wins)."""
        with transaction(self._conn):
            self._conn.executemany(
                "INSERT OR IGNORE INTO eval_baseline VALUES (?, ?, ?, ?)",
                [(uid, c.text, encode_ids(c.token_ids), c.logp) for uid, c in completions.items()],
            )

    @_guarded
    def baseline(self) -> dict[str, Completion]:
        """The stored baseline completions by uid, in eval-prompt order."""
        rows = self._conn.execute(
            "SELECT b.* FROM eval_baseline b JOIN eval_prompts p USING (uid) ORDER BY p.position"
        )
        return {r["uid"]: decode_completion(r["text"], r["token_ids"], r["logp"]) for r in rows}

    @_guarded
    def save_eval_completions(self, round: int, completions: Mapping[str, Completion]) -> None:
        """Store the policy's eval completions after `round` by uid (first write wins)."""
        with transaction(self._conn):
            self._conn.executemany(
                "INSERT OR IGNORE INTO eval_completions VALUES (?, ?, ?, ?, ?)",
                [
                    (round, uid, c.text, encode_ids(c.token_ids), c.logp)
                    for uid, c in completions.items()
                ],
            )

    @_guarded
    def eval_completions(self, round: int) -> dict[str, Completion]:
        """The policy's stored eval completions after `round`, in eval-prompt order."""
        rows = self._conn.execute(
            "SELECT e.* FROM eval_completions e JOIN eval_prompts p USING (uid) "
            "WHERE e.round = ? ORDER BY p.position",
            (round,),
        )
        return {r["uid"]: decode_completion(r["text"], r["token_ids"], r["logp"]) for r in rows}

    @_guarded
    def record_eval_verdicts(self, round: int, judgements: Mapping[str, Judgement]) -> int:
        """Commit eval verdicts (policy = A, baseline = B) by uid; returns how many were new."""
        with transaction(self._conn):
            cur = self._conn.executemany(
                f"INSERT OR IGNORE INTO eval_verdicts (round, uid, {JUDGEMENT_FIELDS}) "
                f"VALUES (?, ?, {JUDGEMENT_PLACEHOLDERS})",
                [(round, uid, *judgement_values(j)) for uid, j in judgements.items()],
            )
        return max(cur.rowcount, 0)

    @_guarded
    def eval_verdicts(self, round: int) -> dict[str, Judgement]:
        """The stored eval verdicts after `round` by uid, in eval-prompt order."""
        rows = self._conn.execute(
            "SELECT v.* FROM eval_verdicts v JOIN eval_prompts p USING (uid) "
            "WHERE v.round = ? ORDER BY p.position",
            (round,),
        )
        return {r["uid"]: judgement_from_row(r) for r in rows}
