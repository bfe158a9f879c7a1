"""Labelled preferences as DPO training rows: validation split, length check, collation."""

from __future__ import annotations

import hashlib
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
    """Pads a list of rows into one batch for one forward pass, plus their reference log-probs.

    With `shared_prompt`, one packed row per pair (`apl.policy.pair_scoring`: the prompt is
    computed once for both completions); otherwise 2N rows, chosen first, then rejected.
    """

    def __init__(self, pad_token_id: int, shared_prompt: bool = False) -> None:
        self.pad_token_id = pad_token_id
        self.shared_prompt = shared_prompt

    def __call__(self, rows: Sequence[PreferenceRow]) -> dict[str, torch.Tensor]:
        """The model's inputs plus ref_chosen / ref_rejected [N]."""
        prompts = [r.prompt_ids for r in rows]
        chosen, rejected = [r.chosen_ids for r in rows], [r.rejected_ids for r in rows]
        if self.shared_prompt:
            batch = collate_shared_prompt(prompts, chosen, rejected, self.pad_token_id)
        else:
            batch = collate_pairs(
                [list(p) for p in prompts + prompts],
                [list(c) for c in chosen + rejected],
                self.pad_token_id,
            )
        batch["ref_chosen"] = torch.tensor([r.ref_chosen for r in rows], dtype=torch.float32)
        batch["ref_rejected"] = torch.tensor([r.ref_rejected for r in rows], dtype=torch.float32)
        return batch
