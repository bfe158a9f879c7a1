"""Pretraining data: IMDB text joined with EOS, packed into fixed blocks, in a seeded order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from apl.data.imdb_reviews import load_imdb_reviews


def imdb_texts(split: str, max_reviews: int | None = None) -> list[str]:
    """Cleaned IMDB review texts of `split` in file order, the first `max_reviews` if given."""
    texts = [review.text for review in load_imdb_reviews(split)]  # type: ignore[arg-type]
    return texts if max_reviews is None else texts[:max_reviews]


def pack_blocks(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_size: int
) -> torch.Tensor:
    """Encode `texts`, join them with EOS after each, and cut into `[n, block_size]` rows.

    The ragged tail shorter than one block is dropped, as in nanoGPT and HF's `group_texts`.
    """
    eos = tokenizer.eos_token_id
    assert eos is not None, "the pretraining tokenizer always has an EOS token"
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(eos)
    n_blocks = len(stream) // block_size
    return torch.tensor(stream[: n_blocks * block_size], dtype=torch.long).view(
        n_blocks, block_size
    )


def validation_blocks(
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    n_blocks: int,
    max_reviews: int | None = None,
) -> torch.Tensor:
    """The first `n_blocks` packed blocks of the IMDB *test* split: the held-out slice."""
    # About 300 tokens per review, so this many reviews always fill `n_blocks` blocks.
    needed = max(8, n_blocks * block_size // 100)
    limit = needed if max_reviews is None else min(needed, max_reviews)
    blocks = pack_blocks(tokenizer, imdb_texts("test", limit), block_size)
    return blocks[:n_blocks]


def batch_stream(blocks: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless `[batch_size, block]` batches: a seeded permutation per epoch, tail dropped."""
    if blocks.size(0) < batch_size:
        raise ValueError(f"only {blocks.size(0)} blocks for batch_size {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(blocks.size(0), generator=generator)
        for start in range(0, blocks.size(0) - batch_size + 1, batch_size):
            yield blocks[order[start : start + batch_size]]
