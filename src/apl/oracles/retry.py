"""Retrying a judge call: which failures are worth it, and how long to wait before the next try."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

from apl.errors import OracleError


class Transient(Exception):
    """A failure worth retrying; `wait_s` is the server's Retry-After when it gave one."""

    def __init__(self, reason: str, wait_s: float | None = None, maybe_billed: bool = False):
        super().__init__(reason)
        self.wait_s = wait_s
        self.maybe_billed = maybe_billed  # the server may have done (and billed) the work


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def retry_delay(
    attempt: int,
    retry_after: float | None,
    base_s: float,
    max_s: float,
    max_retry_after_s: float,
    jitter: random.Random,
    who: str,
) -> float:
    """Seconds before retry `attempt + 1`: the server's Retry-After exactly as asked, else
    `base_s * 2^attempt` capped at `max_s`, with equal jitter.

    A Retry-After above `max_retry_after_s` raises OracleError (no early retries that would
    burn the retry limit against a server that said not yet).
    """
    if retry_after is not None:
        if retry_after > max_retry_after_s:
            raise OracleError(
                f"{who} asked to wait {retry_after:.0f} s (Retry-After) before retrying, more "
                f"than max_retry_after_s ({max_retry_after_s:g}); raise "
                "oracle.max_retry_after_s to wait, or resume later (paid labels are kept)."
            )
        return retry_after
    full = min(base_s * 2**attempt, max_s)
    return full / 2 + jitter.uniform(0, full / 2)  # "equal jitter"
