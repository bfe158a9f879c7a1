"""IMDB prompt pools at process start: cut them (empty prompt cache) vs read them (filled cache).

Each load runs in a fresh Python process, as each `apl run` / `apl resume` / sweep child does,
and times only `ImdbTask.load_prompts` for the train and test splits (the tokenizer is loaded
before the clock starts). Cold (a new, empty APL_CACHE_DIR) and warm (the directory the first
cold load filled) alternate, so both see the same machine load. Prints each time, the medians,
their ratio, the cache file sizes, and checks that every load gave the same prompts.

    python benchmarks/bench_prompt_cache.py [--repeats 3] [--model builtin:imdb-gpt2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(model: str) -> None:
    """Load both splits once; print seconds and a digest of every prompt field, as JSON."""
    from apl.config import ModelConfig
    from apl.data.imdb import ImdbTask
    from apl.policy.model import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(model_name_or_path=model))
    start = time.perf_counter()
    task = ImdbTask()
    prompts = {split: task.load_prompts(split, tokenizer, seed=0) for split in ("train", "test")}
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for split, pool in prompts.items():
        for p in pool:
            digest.update(repr((split, p.uid, p.text, p.reference, p.label, p.messages)).encode())
    counts = {split: len(pool) for split, pool in prompts.items()}
    print(json.dumps({"seconds": seconds, "digest": digest.hexdigest(), "counts": counts}))


def load_in_child(model: str, cache_dir: Path) -> dict:
    """One child process with `cache_dir` as its APL_CACHE_DIR."""
    env = dict(os.environ, APL_CACHE_DIR=str(cache_dir), HF_HUB_OFFLINE="1")
    env.pop("APL_PROMPT_CACHE_DIR", None)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--model", model],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Alternate cold and warm loads, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="builtin:imdb-gpt2")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model)
        return
    load = os.getloadavg()
    cold, warm, digests = [], [], set()
    with tempfile.TemporaryDirectory() as tmp:
        filled = Path(tmp) / "filled"
        first = load_in_child(args.model, filled)  # fills the warm directory (not timed)
        digests.add(first["digest"])
        for i in range(args.repeats):
            runs = (("cold", Path(tmp) / f"cold-{i}", cold), ("warm", filled, warm))
            for name, directory, times in runs if i % 2 == 0 else runs[::-1]:
                result = load_in_child(args.model, directory)
                times.append(result["seconds"])
                digests.add(result["digest"])
                print(f"repeat {i + 1} {name}: {result['seconds']:.2f} s", flush=True)
        sizes = [p.stat().st_size for p in (filled / "prompts").glob("*.json")]
    assert len(digests) == 1, "a warm load gave other prompts than a cold one"
    ratio = statistics.median(cold) / statistics.median(warm)
    print(f"model {args.model}; prompts per split {first['counts']}; {os.cpu_count()} cores")
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"cold (cut):  median {statistics.median(cold):.3f} s  {[round(t, 3) for t in cold]}")
    print(f"warm (read): median {statistics.median(warm):.3f} s  {[round(t, 3) for t in warm]}")
    print(f"cold / warm = {ratio:.1f}x; cache files {[f'{s / 1e6:.2f} MB' for s in sizes]}")
    print("identical prompts in every load: yes")


if __name__ == "__main__":
    main()
