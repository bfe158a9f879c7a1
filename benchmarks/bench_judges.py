"""Judge throughput and retry accounting, each against a peer measured in the same run.

1. LLM judge, labelled pairs/s against a local chat-completions server that takes --latency-ms
   per reply: concurrency 1 (the peer) vs 4 and 8 threads, and a second pass answered from
   the SQLite label cache.
2. Retries on a script of one 429 (Retry-After) per label: apl's own loop (client
   max_retries=0) vs the openai client's built-in retries. Both send the same requests; only
   ours sees and counts them, so only ours can charge them to the call budget.
3. Offline IMDB judge: the vectorised `judge_batch` vs one request at a time; fit time and
   held-out accuracy of its classifier (refit in a temporary cache dir with --fit).

    python benchmarks/bench_judges.py [--pairs 64] [--latency-ms 50] [--fit]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from oracles.chat_server import ChatServer, Reply  # noqa: E402

from apl.oracles.base import JudgeRequest  # noqa: E402
from apl.oracles.imdb_judge import ImdbJudge  # noqa: E402
from apl.oracles.openai_judge import OpenAIJudge  # noqa: E402
from apl.store.judgement_cache import JudgementCache  # noqa: E402


def llm_judge(server: ChatServer, **kwargs) -> OpenAIJudge:
    """A judge pointed at the local server with a priced test model."""
    options = dict(
        model="bench",
        base_url=server.base_url,
        api_key_env="APL_BENCH_KEY",
        prices={"bench": (1.0, 1.0)},
        order="fixed",
    )
    return OpenAIJudge(**{**options, **kwargs})


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def bench_concurrency(args: argparse.Namespace, tmp: Path) -> None:
    server = ChatServer(default=lambda request: Reply(delay_s=args.latency_ms / 1000)).start()
    print(f"\n## LLM judge: {args.pairs} pairs, {args.latency_ms} ms per reply (local server)")
    base = None
    for threads in (1, 4, 8):
        requests = [JudgeRequest(f"c{threads} p{i}", " good", " bad") for i in range(args.pairs)]
        cache = JudgementCache(tmp / f"cache-{threads}.sqlite")
        seconds, _ = timed(
            lambda: llm_judge(server, concurrency=threads, cache=cache).judge_batch(requests)
        )
        rate = args.pairs / seconds
        base = base or rate
        print(f"concurrency {threads}: {rate:8.1f} pairs/s  ({rate / base:.2f}x concurrency 1)")
        if threads == 8:
            before = server.count
            seconds, _ = timed(
                lambda: llm_judge(server, concurrency=threads, cache=cache).judge_batch(requests)
            )
            hits = args.pairs / seconds
            print(
                f"cache hits:    {hits:8.1f} pairs/s  ({hits / base:.1f}x concurrency 1), "
                f"HTTP requests: {server.count - before}"
            )
    server.stop()


def bench_retries(args: argparse.Namespace) -> None:
    n = 16
    print(f"\n## Retries: {n} labels, each first answered 429 with Retry-After 0.05 s")
    for label, kwargs in (("apl loop (client max_retries=0)", {}), ("openai client retries", None)):
        server = ChatServer().start()
        server.push(
            *[
                r
                for _ in range(n)
                for r in (Reply(status=429, headers={"Retry-After": "0.05"}), Reply())
            ]
        )
        requests = [JudgeRequest(f"r{i}", " a", " b") for i in range(n)]
        judge = llm_judge(server, max_retries=3, concurrency=1)  # script order = request order
        if kwargs is None:  # the peer: let the client retry inside one call, invisibly
            judge._client = judge._client.with_options(max_retries=3)
        seconds, judgements = timed(lambda: judge.judge_batch(requests))
        counted = sum(j.retries for j in judgements)
        print(
            f"{label:32s}: {seconds:5.2f} s, server saw {server.count} requests, "
            f"apl counted {counted} retries, budget charged {judge.budget.calls} calls"
        )
        server.stop()


def bench_offline(args: argparse.Namespace, tmp: Path) -> None:
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.oracles.sentiment_model import load_sentiment_model

    cache_dir = str(tmp / "fit") if args.fit else None
    seconds, model = timed(lambda: load_sentiment_model(cache_dir))
    m = model.metrics
    print(f"\n## Offline IMDB judge (load or fit: {seconds:.1f} s)")
    print(
        f"classifier: fit {m['fit_s']:.1f} s on {m['num_train']:.0f} reviews; held-out accuracy "
        f"{m['test_accuracy']:.3f} on {m['num_test']:.0f} full reviews, "
        f"{m['test_accuracy_40_words']:.3f} on 40-word openings"
    )
    reviews = [r.text.split() for r in load_imdb_reviews("test")[: 2 * args.pairs * 4]]
    requests = [
        JudgeRequest(" ".join(a[:10]), " " + " ".join(a[10:30]), " " + " ".join(b[10:30]))
        for a, b in zip(reviews[::2], reviews[1::2])
    ]
    judge = ImdbJudge(cache_dir=cache_dir)
    batch_s, _ = timed(lambda: judge.judge_batch(requests))
    single_s, _ = timed(lambda: [judge.judge(r) for r in requests])
    batch, single = len(requests) / batch_s, len(requests) / single_s
    print(
        f"judge_batch: {batch:8.0f} pairs/s; one at a time: {single:6.0f} pairs/s "
        f"(batch {batch / single:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--fit", action="store_true", help="refit the classifier in a temp dir")
    args = parser.parse_args()
    os.environ.setdefault("APL_BENCH_KEY", "sk-bench")
    with tempfile.TemporaryDirectory() as tmp:
        bench_concurrency(args, Path(tmp))
        bench_retries(args)
        bench_offline(args, Path(tmp))


if __name__ == "__main__":
    main()
