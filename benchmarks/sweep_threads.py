"""How a sweep should use CPU cores: one run with all threads, or one single-threaded run per core?

Peers, measured in the same invocation on the same model: a DPO-sized training step (forward +
backward of 2 x batch sequences of 36 tokens, bf16 autocast where supported) repeated for
`--seconds`, (a) in one process with `--cores` torch threads, (b) in `--cores` processes with
one thread each, all at once. Prints total pairs/s and (b)/(a): `apl sweep`'s CPU default
(`OMP_NUM_THREADS=1`, one run per core) is right when the ratio is above 1.

    python benchmarks/sweep_threads.py [--model DIR] [--cores 2] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def worker(model_name: str, threads: int, seconds: float, batch: int) -> float:
    """Pairs/s of repeated training steps in this process at `threads` torch threads."""
    import torch

    from apl.config import ModelConfig
    from apl.policy.model import load_model

    torch.set_num_threads(threads)
    loaded = load_model(ModelConfig(model_name_or_path=model_name, device="cpu"))
    model = loaded.model.train()
    ids = torch.randint(0, model.config.vocab_size, (2 * batch, 36))

    def step() -> None:
        with loaded.autocast():
            model(ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)

    step()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return batch * steps / (time.perf_counter() - start)


def spawn(args: argparse.Namespace, threads: int, count: int) -> float:
    """Total pairs/s of `count` concurrent worker processes at `threads` threads each."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [
        sys.executable,
        __file__,
        "--worker",
        str(threads),
        "--model",
        args.model,
        "--seconds",
        str(args.seconds),
        "--batch",
        str(args.batch),
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True) for _ in range(count)
    ]
    return sum(json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main() -> None:
    """Measure both peers and print the ratio."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="builtin:imdb-gpt2")
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=32, help="Pairs per step.")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.model, args.worker, args.seconds, args.batch)))
        return
    load = os.getloadavg()[0]
    one = spawn(args, args.cores, 1)
    many = spawn(args, 1, args.cores)
    print(f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"1 run x {args.cores} threads: {one:6.1f} pairs/s")
    print(f"{args.cores} runs x 1 thread:  {many:6.1f} pairs/s in total")
    print(f"ratio (one run per core / one run with all cores): {many / one:.2f}")


if __name__ == "__main__":
    main()
