"""What `generation.stop` costs the sampler: the same sampling with and without stop strings.

Stop strings are applied after sampling (a decode per completion, a binary search of decodes
for one that holds a stop string), so both runs draw the same tokens; runs are interleaved and
the median of `--repeats` is compared. The shipped model, 64 IMDB test openings x 2 samples of
24 tokens, one thread.

    python benchmarks/stop_strings.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    """Print median seconds per sampling call with and without stop strings, and the ratio."""
    import torch

    from apl.config import ModelConfig
    from apl.data.imdb_reviews import load_imdb_reviews
    from apl.policy.model import load_model
    from apl.policy.sampling import encode_prompts, sample_completions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(ModelConfig(device="cpu", bf16=False))
    texts = [" ".join(r.text.split()[:12]) for r in load_imdb_reviews("test")[:64]]
    prompt_ids = encode_prompts(loaded.tokenizer, texts)
    variants = {"none": (), "stop": (" and", ".")}  # common strings: most completions are cut
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    cut = 0
    for repeat in range(args.repeats):
        for name, stop in variants.items():
            start = time.perf_counter()
            out = sample_completions(
                loaded.model,
                loaded.tokenizer,
                prompt_ids,
                num_samples=2,
                min_new_tokens=24,
                max_new_tokens=24,
                generator=torch.Generator().manual_seed(repeat),
                stop=stop,
            )
            seconds[name].append(time.perf_counter() - start)
            if stop:
                cut = sum(len(c.token_ids) < 24 for row in out for c in row)
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.3f} s ({values})")
    ratio = statistics.median(seconds["stop"]) / statistics.median(seconds["none"])
    print(f"stop / none: {ratio:.3f}; {cut} of {2 * len(texts)} completions cut by a stop string")


if __name__ == "__main__":
    main()
