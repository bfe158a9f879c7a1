"""The reward_model judge on the test reward model: how well it learns the offline judge, how fast.

Trains the tiny reward model exactly as the test fixture does (tests/oracles/tiny_reward_model.py:
a 1-layer word-level GPT2ForSequenceClassification, Bradley-Terry steps on `imdb_judge`'s
verdicts for IMDB train pairs), then reports its agreement with `imdb_judge` on held-out test
pairs and both judges' `judge_batch` throughput.

    python benchmarks/bench_reward_model.py [--pairs 10000] [--steps 300] [--held-out 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from oracles.tiny_reward_model import imdb_pairs, train_reward_model  # noqa: E402

from apl.oracles.imdb_judge import ImdbJudge  # noqa: E402
from apl.oracles.reward_model import RewardModelJudge  # noqa: E402
from apl.types import Verdict  # noqa: E402


def main() -> None:
    """Train, measure agreement and throughput, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--held-out", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the tests
    judge = ImdbJudge()
    start = time.perf_counter()
    requests = imdb_pairs("train", args.pairs, seed=0)
    verdicts = [j.verdict for j in judge.judge_batch(requests)]
    label_s = time.perf_counter() - start
    start = time.perf_counter()
    out = train_reward_model(Path(tempfile.mkdtemp()), requests, verdicts, steps=args.steps)
    train_s = time.perf_counter() - start
    test = imdb_pairs("test", args.held_out, seed=1)
    start = time.perf_counter()
    expected = [j.verdict for j in ImdbJudge().judge_batch(test)]
    imdb_s = time.perf_counter() - start
    reward_model = RewardModelJudge(str(out))
    start = time.perf_counter()
    got = [j.verdict for j in reward_model.judge_batch(test)]
    rm_s = time.perf_counter() - start
    decided = [(g, e) for g, e in zip(got, expected, strict=True) if e in (Verdict.A, Verdict.B)]
    agreement = sum(g is e for g, e in decided) / len(decided)
    ties = sum(g is Verdict.TIE for g in got)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"label {args.pairs} pairs {label_s:.1f} s; train {args.steps} steps {train_s:.1f} s")
    print(
        f"agreement with imdb_judge {agreement:.3f} on {len(decided)} held-out pairs; ties {ties}"
    )
    print(
        f"judge_batch: reward_model {len(test) / rm_s:.0f} pairs/s "
        f"({reward_model.judge_id.split('|')[-1]}, {reward_model.device}); "
        f"imdb_judge {len(test) / imdb_s:.0f} pairs/s"
    )


if __name__ == "__main__":
    main()
