"""What the write-ahead call journal costs per judge call, against the in-memory count it replaced.

Each judge call reserves before it is sent and settles after: two committed transactions
(`synchronous=FULL`) in the run's ledger, four when the run also counts against a sweep file.
Peers, interleaved in one run so a shared machine's load hits all alike: the in-memory journal
(what a process-local budget cost), the ledger journal, ledger + sweep file; each on an empty
journal and on one already holding `--history` calls (the totals are summed per reservation).

    python benchmarks/bench_spend_journal.py [--calls 200] [--rounds 3] [--history 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from apl.loop.spending import RunSpendJournal
from apl.oracles.budget import Budget, MemoryJournal
from apl.store.ledger_schema import transaction
from apl.store.spend_journal import CallJournal


def _fill(journal: CallJournal, history: int) -> None:
    """`history` settled calls, as a long run leaves behind."""
    with journal._lock, transaction(journal._conn):
        journal._conn.executemany(
            "INSERT INTO oracle_calls (judge_id, request_key, state, worst_usd, actual_usd, "
            "pid, started_at, settled_at) VALUES ('j', 'k', 'settled', 0.01, 0.002, 0, 0, 0)",
            [()] * history,
        )


def _per_call_ms(root: Path, peer: str, calls: int, history: int, seed: int) -> float:
    budget = Budget(budget_usd=1e9, max_calls=None)
    opened: list[CallJournal] = []
    if peer != "memory":
        run_dir = root / f"{peer}-{history}-{seed}"
        run_dir.mkdir()
        opened.append(CallJournal.for_ledger(run_dir / "ledger.sqlite"))
        if peer == "ledger+sweep":
            opened.append(CallJournal.for_sweep(run_dir / "sweep_spend.sqlite", run="r"))
            opened[1].set_limits(1e9, None)
        for journal in opened:
            _fill(journal, history)
        sweep = opened[1] if len(opened) > 1 else None
        budget.use_journal(RunSpendJournal(run_dir, opened[0], sweep))
    else:
        budget.use_journal(MemoryJournal())
    start = time.perf_counter()
    for i in range(calls):
        budget.settle(budget.reserve(0.01, "judge", f"k{i}"), 0.002)
    elapsed = time.perf_counter() - start
    for journal in opened:
        journal.close()
    return elapsed / calls * 1000


def main() -> None:
    """Print ms per call (reserve + settle) for each peer, and the ratio to the in-memory one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=20_000)
    args = parser.parse_args()
    peers = [(p, h) for h in (0, args.history) for p in ("memory", "ledger", "ledger+sweep")]
    times: dict[tuple[str, int], list[float]] = {peer: [] for peer in peers}
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        for seed in range(args.rounds):
            for peer, history in peers:
                ms = _per_call_ms(Path(tmp), peer, args.calls, history, seed)
                times[(peer, history)].append(ms)
    print(f"per call (reserve + settle), median of {args.rounds} rounds x {args.calls} calls:")
    for peer, history in peers:
        ms = statistics.median(times[(peer, history)])
        base = statistics.median(times[("memory", history)])
        print(f"  {peer:13s} {history:6d} earlier calls {ms:8.3f} ms   ratio {ms / base:8.1f}")


if __name__ == "__main__":
    main()
