"""Give freed heap memory back to the OS between steps, so a long run's RSS stays flat.

PyTorch's CPU tensors come from glibc malloc. DPO and sampling allocate large buffers of
varying shapes (logits for batches of different lengths), which fragment glibc's heap: freed
chunks stay in the process, and peak RSS grew to 4.6 GB while training a 5M-parameter model
on 512 pairs. `malloc_trim(0)` after each epoch and phase returns the free pages; measured
cost about 9% of training time at one trim per 4 steps, against 1.7x for forcing every
buffer over 1 MB through mmap. A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True if the allocator supports it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
