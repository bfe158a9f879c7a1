"""What durability costs: one committed verdict per transaction under synchronous FULL vs peers.

The ledger commits each paid verdict on its own with `synchronous=FULL` (a commit survives a
power cut, not only a killed process). Peers measured in the same run, interleaved so a shared
machine's load hits all alike: `synchronous=NORMAL` (WAL: survives kill -9, may lose the last
commits on power loss), `OFF`, and FULL with all verdicts of a round in one transaction (what
batching would buy, at the price of losing a whole batch of paid labels on a crash).
Also times saving a round of ranked candidates (one transaction) and reading the labelled set.

    python benchmarks/bench_ledger.py [--verdicts 300] [--candidates 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from apl.store.ledger import Ledger
from apl.store.ledger_schema import (
    JUDGEMENT_FIELDS,
    JUDGEMENT_PLACEHOLDERS,
    judgement_values,
    transaction,
)
from apl.types import Completion, Judgement, Pair, Prompt, Verdict


def _pairs(n: int, seed: int) -> list[Pair]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ids = [tuple(rng.randrange(8000) for _ in range(rng.randint(16, 24))) for _ in "ab"]
        out.append(
            Pair(
                Prompt(f"p{seed}-{i}", "x" * 80, label=1),
                Completion("a" * 90, ids[0], -40.0),
                Completion("b" * 90, ids[1], -41.0),
                -40.5, -41.5, rng.random(), {"reward_a": 0.1, "reward_b": -0.1, "bt_prob": 0.55},
            )
        )  # fmt: skip
    return out


def _judgement(i: int) -> Judgement:
    rationale = f"Comparison: completion A is more positive ({i}).\nPreferred: A"
    return Judgement(Verdict.A, rationale, "BA", 180, 20, 0.0021, 0.8, False, "gpt-4|t0.05")


def _verdict_ms(root: Path, mode: str, n: int, seed: int) -> float:
    """Milliseconds per verdict for `mode` (FULL, NORMAL, OFF, or FULL-batched)."""
    with Ledger(root / f"{mode}-{seed}.sqlite") as led:
        if mode != "FULL-batched":
            led._conn.execute(f"PRAGMA synchronous = {mode}")
        cands = led.save_candidates(0, _pairs(n, seed))
        start = time.perf_counter()
        if mode == "FULL-batched":
            with transaction(led._conn):
                for i, c in enumerate(cands):
                    led._conn.execute(  # the same row record_verdict writes, one commit
                        f"INSERT INTO verdicts (candidate_id, {JUDGEMENT_FIELDS}) "
                        f"VALUES (?, {JUDGEMENT_PLACEHOLDERS})",
                        (c.id, *judgement_values(_judgement(i))),
                    )
        else:
            for i, c in enumerate(cands):
                led.record_verdict(c.id, _judgement(i))
        return (time.perf_counter() - start) / n * 1000


def main() -> None:
    """Print ms per verdict for each mode, and each as a ratio of FULL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verdicts", type=int, default=300)
    parser.add_argument("--candidates", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ["FULL", "NORMAL", "OFF", "FULL-batched"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        root = Path(tmp)
        for r in range(args.rounds):
            for mode in modes:
                times[mode].append(_verdict_ms(root, mode, args.verdicts, seed=r))
        full = statistics.median(times["FULL"])
        print(f"per verdict, median of {args.rounds} rounds x {args.verdicts} verdicts:")
        for mode in modes:
            ms = statistics.median(times[mode])
            print(f"  {mode:13s} {ms:8.3f} ms   ratio to FULL {ms / full:6.3f}")
        with Ledger(root / "candidates.sqlite") as led:
            pairs = _pairs(args.candidates, 99)
            start = time.perf_counter()
            cands = led.save_candidates(0, pairs)
            saved = time.perf_counter() - start
            for i, c in enumerate(cands[:256]):
                led.record_verdict(c.id, _judgement(i))
            start = time.perf_counter()
            labelled = led.preferences()
            read = time.perf_counter() - start
        print(f"save_candidates({args.candidates} pairs, one transaction): {saved * 1000:.1f} ms")
        print(f"preferences() -> {len(labelled)} labelled pairs: {read * 1000:.1f} ms")


if __name__ == "__main__":
    main()
