"""A tiny reward model apl trains here, so the reward_model judge is tested on a real HF model.

A 1-layer GPT2ForSequenceClassification over a word-level vocabulary (sentiment words are
single tokens, so a few seconds of training can learn them), trained with the Bradley-Terry
loss on the offline judge's verdicts for IMDB pairs, saved with `save_pretrained`. Measured:
about 0.77 agreement with `imdb_judge` on held-out pairs after 300 steps (chance 0.5); the
2-layer BPE test model from scratch stayed at chance, and the shipped model was 50x slower.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from apl.data.imdb_reviews import load_imdb_reviews
from apl.oracles.base import JudgeRequest
from apl.types import Verdict


def imdb_pairs(split: str, n: int, seed: int) -> list[JudgeRequest]:
    """Pairs as the loop asks them: an 8-16-word review opening, two 16-24-word continuations."""
    rng = random.Random(seed)
    reviews = [r.text.split() for r in load_imdb_reviews(split)]
    out = []
    for _ in range(n):
        prompt = " ".join(rng.choice(reviews)[: rng.randint(8, 16)])
        completions = []
        for _ in range(2):
            words, k = rng.choice(reviews), rng.randint(16, 24)
            start = rng.randint(0, max(0, len(words) - k))
            completions.append(" " + " ".join(words[start : start + k]))
        out.append(JudgeRequest(prompt, *completions))
    return out


def build_reward_model(vocab_size: int = 4000, n_embd: int = 32, seed: int = 0):
    """An untrained 1-layer GPT-2 reward model (one output) with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    split = pre_tokenizers.Whitespace()
    counts = Counter(
        word
        for review in load_imdb_reviews("train")[:5000]
        for word, _ in split.pre_tokenize_str(review.text.lower())
    )
    vocab = {"<unk>": 0, "<pad>": 1}
    for word, _ in counts.most_common(vocab_size - len(vocab)):
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer, backend.pre_tokenizer = normalizers.Lowercase(), split
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>"
    )
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=128,
        n_embd=n_embd,
        n_layer=1,
        n_head=2,
        num_labels=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(seed)
    return GPT2ForSequenceClassification(config), tokenizer


def train_reward_model(
    out_dir: Path,
    requests: list[JudgeRequest],
    verdicts: list[Verdict],
    steps: int = 300,
    batch_pairs: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> Path:
    """Fit a reward model to (request, verdict) pairs (A/B only) and save it in HF format."""
    model, tokenizer = build_reward_model(seed=seed)
    data = [(r, v) for r, v in zip(requests, verdicts, strict=True) if v in (Verdict.A, Verdict.B)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        batch = rng.sample(data, batch_pairs)
        chosen = [
            r.prompt + (r.completion_a if v is Verdict.A else r.completion_b) for r, v in batch
        ]
        rejected = [
            r.prompt + (r.completion_b if v is Verdict.A else r.completion_a) for r, v in batch
        ]
        encoded = tokenizer(
            chosen + rejected, padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        rewards = model(**encoded).logits[:, 0]
        loss = -F.logsigmoid(rewards[:batch_pairs] - rewards[batch_pairs:]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
