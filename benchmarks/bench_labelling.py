"""How long a person waits per answer on the labelling page, over real HTTP on 127.0.0.1.

One answer = POST /answer (committed in its own synchronous=FULL transaction) + the redirect
to the next pair's page (GET /label: pick, mark shown, render). Measured for 1 annotator and
for 4 at once (threads, k=1, so they compete for the same queue), interleaved per repeat so the
shared machine's load hits both alike. The peer for scale: the page alone (GET /label without
answering), the part of each answer that is not the commit.

    python benchmarks/bench_labelling.py [--pairs 120] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from apl.labelling.app import PageSettings, create_app
from apl.labelling.server import serve_in_thread
from apl.store.label_queue import LabelQueue
from apl.store.ledger import Ledger
from apl.types import QueueItem


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def annotate(url: str, token: str, answers: int, times: list[float], reads: list[float]) -> None:
    """Sign in, then answer `answers` pairs (or until none is left), timing each."""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=30) as client:
        page = client.get(f"/a/{token}").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        for _ in range(answers):
            match = re.search(r'name="pair" value="(\d+)"', page)
            if match is None:
                return
            start = time.perf_counter()
            client.get("/label")
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            response = client.post(
                "/answer", data={"csrf": csrf, "pair": match.group(1), "choice": "left"}
            )
            times.append(time.perf_counter() - start)
            page = response.text


def one_round(directory: Path, pairs: int, people: int) -> tuple[list[float], list[float]]:
    """Serve a fresh queue of `pairs`; `people` annotators answer it all; their timings."""
    directory.mkdir()
    Ledger(directory / "ledger.sqlite").close()
    times: list[float] = []
    reads: list[float] = []
    with LabelQueue(directory / "ledger.sqlite") as queue:
        queue.open_pairs(
            [
                QueueItem(f"k{i}", 1, "label", f"p{i}", f"a{i}", f"b{i}", "AB", 1)
                for i in range(pairs)
            ]
        )
        page = PageSettings("bench", "Which?", pairs, 0.0, "apl resume bench")
        server = serve_in_thread(create_app(queue, page), "127.0.0.1", free_port())
        try:
            workers = [
                threading.Thread(
                    target=annotate,
                    args=(server.url, queue.add_annotator(f"p{i}"), pairs, times, reads),
                )
                for i in range(people)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        finally:
            server.stop()
    return times, reads


def main() -> None:
    """Measure and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, tuple[list[float], list[float]]] = {1: ([], []), 4: ([], [])}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for people in (1, 4):
                times, reads = one_round(Path(tmp) / f"{repeat}-{people}", args.pairs, people)
                results[people][0].extend(times)
                results[people][1].extend(reads)
    print(
        "| annotators at once | answers | answer + next page, median ms | p95 ms | page alone, median ms |"
    )
    print("|---:|---:|---:|---:|---:|")
    for people, (times, reads) in results.items():
        ms = sorted(t * 1000 for t in times)
        p95 = ms[int(0.95 * (len(ms) - 1))]
        print(
            f"| {people} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | "
            f"{statistics.median(reads) * 1000:.1f} |"
        )


if __name__ == "__main__":
    main()
