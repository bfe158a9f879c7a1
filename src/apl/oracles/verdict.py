"""Reading a judge's reply: the verdict comes from its final `Preferred:` line, nothing else.

Only the last line that starts with `Preferred:` counts, so a completion quoted earlier in the
reply ("... Preferred: B ...") cannot decide. Quotes, case, markdown emphasis, whitespace and
trailing punctuation are tolerated, as is a label such as `Review A`; any other value, or no
such line at all, is INVALID. INVALID is never coerced into a label.
"""

from __future__ import annotations

import re
from dataclasses import replace

from apl.types import Judgement, Verdict

# A line that starts (after markdown noise such as '**' or '> ') with "Preferred" and a colon.
_PREFERRED = re.compile(r"^[\s>*_#`\"'-]*preferred[\s*_`\"']*[:\uff1a](?P<value>.*)$", re.I | re.M)
_LABEL = re.compile(r"(?:(?:review|summary|option|answer|response|completion)\s+)?([ab])", re.I)
_NOISE = " \t\"'`*_.,;:!?()[]{}<>\u201c\u201d\u2018\u2019"


def parse_verdict(reply: str) -> Verdict:
    """A or B from the reply's final `Preferred:` line; INVALID when it names neither."""
    matches = list(_PREFERRED.finditer(reply or ""))
    if not matches:
        return Verdict.INVALID
    last = matches[-1]
    value = last.group("value").strip(_NOISE)
    if not value:  # "Preferred:" with the answer alone on the next non-empty line
        rest = [line for line in reply[last.end() :].splitlines() if line.strip(_NOISE)]
        value = rest[0].strip(_NOISE) if rest else ""
    label = _LABEL.fullmatch(value)
    return Verdict(label.group(1).upper()) if label else Verdict.INVALID


def unswap(verdict: Verdict, shown_order: str) -> Verdict:
    """Map a verdict about the shown positions back to the request's A and B."""
    if shown_order != "BA" or verdict not in (Verdict.A, Verdict.B):
        return verdict
    return Verdict.B if verdict is Verdict.A else Verdict.A


def combine_orders(ab: Judgement, ba: Judgement) -> Judgement:
    """One judgement from both orders (verdicts already in request terms): counts only if they agree.

    A disagreement is INVALID with rationale starting 'order-inconsistent', so position bias
    never becomes a label; the caller decides whether to drop the pair or ask again.
    """
    agree = ab.verdict is ba.verdict and ab.verdict is not Verdict.INVALID
    if agree:
        verdict, head = ab.verdict, "orders agree"
    elif Verdict.INVALID in (ab.verdict, ba.verdict):
        verdict, head = Verdict.INVALID, "invalid reply in one order"
    else:
        verdict = Verdict.INVALID
        head = f"order-inconsistent: AB said {ab.verdict.value}, BA said {ba.verdict.value}"
    rationale = f"{head}\n[AB] {ab.rationale}\n[BA] {ba.rationale}"
    return replace(
        ab,
        verdict=verdict,
        rationale=rationale,
        shown_order="both",
        prompt_tokens=ab.prompt_tokens + ba.prompt_tokens,
        completion_tokens=ab.completion_tokens + ba.completion_tokens,
        cost_usd=ab.cost_usd + ba.cost_usd,
        latency_s=ab.latency_s + ba.latency_s,
        retries=ab.retries + ba.retries,
        from_cache=ab.from_cache and ba.from_cache,
    )


def is_order_flip(ab: Verdict, ba: Verdict) -> bool:
    """Both orders gave a label and the labels differ: position decided, not content."""
    valid = (Verdict.A, Verdict.B)
    return ab in valid and ba in valid and ab is not ba
