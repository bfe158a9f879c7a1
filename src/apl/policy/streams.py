"""Per-completion random streams for the sampler: counter-based, so no draw depends on batching.

Prompt i's sample j has its own 64-bit stream, a hash of (the prompt's seed, j); its length
limit and the uniform of each decoding step are splitmix64 hashes of (stream, salt or step).
Tabulating a batch's uniforms is one vectorised NumPy call (microseconds per batch), and the
values are the same whichever batch, process or rank the completion is sampled in. Prompt
seeds come from a call's stream seed and each prompt's uid (`prompt_seeds`) or, for callers
that pass a torch generator, from that generator (`seeds_from`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment: consecutive counters spread
_STEP = np.uint64(0xD1B54A32D192ED03)  # another odd constant: step counters apart from samples
_LENGTH_SALT = np.uint64(0x5851F42D4C957F2D)  # the length draw apart from the step uniforms


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic): a counter -> 64 random bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def prompt_seeds(stream: int, keys: Sequence[str]) -> list[int]:
    """One 63-bit seed per prompt from a call's `stream` and the prompt's key (its uid).

    A key repeated in one call gets a fresh seed per occurrence, so two copies of a prompt are
    two independent draws.
    """
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        n = seen[key] = seen.get(key, -1) + 1
        digest = hashlib.sha256(f"{stream}/{key}/{n}".encode()).digest()
        out.append(int.from_bytes(digest[:8], "big") >> 1)
    return out


def completion_streams(seeds: Sequence[int], num_samples: int) -> np.ndarray:
    """[n, k] uint64: the stream of prompt i's sample j, a hash of (seeds[i], j)."""
    base = np.asarray(seeds, dtype=np.uint64)[:, None]
    return _splitmix(base + (np.arange(1, num_samples + 1, dtype=np.uint64) * _GOLDEN))


def draw_lengths(streams: np.ndarray, low: int, high: int) -> np.ndarray:
    """Each stream's length limit, uniform in [low, high] (the bias of a 64-bit modulo is ~1e-17)."""
    span = np.uint64(high - low + 1)
    return (_splitmix(streams ^ _LENGTH_SALT) % span).astype(np.int64) + low


def uniform_table(streams: np.ndarray, steps: int, device: torch.device) -> torch.Tensor:
    """[rows, steps] float32 uniforms in [0, 1): row r's draw for step s hashes (streams[r], s)."""
    counters = np.arange(1, steps + 1, dtype=np.uint64) * _STEP
    bits = _splitmix(streams.reshape(-1, 1) + counters) >> np.uint64(40)  # 24 bits: float32-exact
    return torch.from_numpy(bits.astype(np.float32) * np.float32(2.0**-24)).to(device)


def seeds_from(generator: torch.Generator | None, n: int) -> list[int]:
    """`n` prompt seeds drawn from `generator` (None: torch's global RNG)."""
    device = generator.device if generator is not None else "cpu"
    draws = torch.randint(0, 2**62, (n,), generator=generator, device=device)
    return draws.cpu().tolist()
