"""Labelled preferences as DPO training rows: validation split, length check, collation."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from apl.errors import ConfigError
from apl.policy.pair_scoring import collate_shared_prompt
from apl.policy.scoring import collate_pairs


class PreferenceRow(NamedTuple):
    """One labelled pair in token ids, with its cached reference log-probs."""

    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    ref_chosen: float
    ref_rejected: float


def row_key(row: PreferenceRow) -> str:
    """A digest of the prompt and the two completions, whichever was chosen.

    The same pair lands on the same side every round, and its label does not decide its side.
    """
    first, second = sorted((row.chosen_ids, row.rejected_ids))
    text = f"{row.prompt_ids}|{first}|{second}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def split_validation(
    rows: Sequence[PreferenceRow], fraction: float
) -> tuple[list[PreferenceRow], list[PreferenceRow]]:
    """(train, validation): the `fraction` of rows with the smallest digests is held out.

    Ranking by a digest of the tokens (not by position or a per-round RNG) keeps a pair's side
    stable as the labelled set grows, so validation losses stay comparable across rounds.
    """
    if fraction <= 0 or len(rows) < 2:
        return list(rows), []
    num_val = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    ranked = sorted(range(len(rows)), key=lambda i: row_key(rows[i]))
    held = set(ranked[:num_val])
    train = [r for i, r in enumerate(rows) if i not in held]
    val = [r for i, r in enumerate(rows) if i in held]
    return train, val


def check_lengths(rows: Sequence[PreferenceRow], max_length: int | None) -> None:
    """Raise ConfigError if a prompt + completion exceeds `max_length` tokens.

    Truncating would make the policy's log-prob cover fewer tokens than the cached reference
    log-prob, silently biasing every reward, so over-long pairs are refused instead.
    """
    if max_length is None:
        return
    for row in rows:
        longest = len(row.prompt_ids) + max(len(row.chosen_ids), len(row.rejected_ids))
        if longest > max_length:
            raise ConfigError(
                f"dpo.max_length ({max_length}) < prompt + completion tokens ({longest}) of a "
                "labelled pair; raise dpo.max_length (up to the model's context) or cut "
                "prompts shorter."
            )


class PreferenceCollator:
    """Collates a batch of rows into chunks of at most `max_tokens` tokens, one forward each.

    With `shared_prompt`, a chunk has one packed row per pair (`apl.policy.pair_scoring`: the
    prompt is computed once for both completions); otherwise two rows per pair, chosen first.
    Pairs are sorted by length before chunking, so a chunk pads to similar lengths; each
    chunk's `pairs` gives its pairs' positions in the batch. The batch keeps `ref_chosen` /
    `ref_rejected` [N] in the original order. A chunk holds at least one pair; None: one chunk.
    """

    def __init__(
        self, pad_token_id: int, shared_prompt: bool = False, max_tokens: int | None = None
    ) -> None:
        self.pad_token_id = pad_token_id
        self.shared_prompt = shared_prompt
        self.max_tokens = max_tokens

    def __call__(self, rows: Sequence[PreferenceRow]) -> dict:
        """{"chunks": [model inputs + `pairs`], "ref_chosen": [N], "ref_rejected": [N]}."""
        return {
            "chunks": [self._collate(rows, idx) for idx in self._chunks(rows)],
            "ref_chosen": torch.tensor([r.ref_chosen for r in rows], dtype=torch.float32),
            "ref_rejected": torch.tensor([r.ref_rejected for r in rows], dtype=torch.float32),
        }

    def _shape(self, rows: Sequence[PreferenceRow]) -> tuple[int, int]:
        """(rows, columns) of the collated tensors: packed, or chosen and rejected padded apart."""
        if self.shared_prompt:
            return len(rows), max(
                len(r.prompt_ids) + len(r.chosen_ids) + len(r.rejected_ids) for r in rows
            )
        prompt = max(len(r.prompt_ids) for r in rows)
        completion = max(max(len(r.chosen_ids), len(r.rejected_ids)) for r in rows)
        return 2 * len(rows), prompt + completion

    def _chunks(self, rows: Sequence[PreferenceRow]) -> list[list[int]]:
        order = sorted(range(len(rows)), key=lambda i: self._shape([rows[i]])[1])
        if self.max_tokens is None:
            return [order]
        chunks: list[list[int]] = [[]]
        for i in order:
            grown = [rows[j] for j in chunks[-1]] + [rows[i]]
            if chunks[-1] and math.prod(self._shape(grown)) > self.max_tokens:
                chunks.append([])
            chunks[-1].append(i)
        return chunks

    def _collate(self, rows: Sequence[PreferenceRow], idx: list[int]) -> dict[str, torch.Tensor]:
        prompts = [rows[i].prompt_ids for i in idx]
        chosen, rejected = [rows[i].chosen_ids for i in idx], [rows[i].rejected_ids for i in idx]
        if self.shared_prompt:
            chunk = collate_shared_prompt(prompts, chosen, rejected, self.pad_token_id)
        else:
            chunk = collate_pairs(
                [list(p) for p in prompts + prompts],
                [list(c) for c in chosen + rejected],
                self.pad_token_id,
            )
        chunk["pairs"] = torch.tensor(idx, dtype=torch.long)
        return chunk
