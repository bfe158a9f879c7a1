"""Reading a judge's reply: the verdict comes from its `Preferred:` lines, nothing else.

Every line that starts with `Preferred:` is read; if two of them disagree (a completion quoted
in the reply can carry its own "Preferred: B") the reply is INVALID, so a completion can at
worst void a comparison, never decide it. Quotes, case, markdown emphasis, whitespace and
trailing punctuation are tolerated, as is a label such as `Review A`, and an explanation after
the label once it is set off by punctuation (`A (Review A is more positive)`, `B - it is
warmer`). Any other value (`neither`, `A or B`, `A/B`, `A, B`), or no such line at all, is
INVALID. INVALID is never coerced into a label.
"""

from __future__ import annotations

import re
from dataclasses import replace

from apl.types import Judgement, Verdict

# A line that starts (after markdown noise such as '**' or '> ') with "Preferred" and a colon.
_PREFERRED = re.compile(r"^[\s>*_#`\"'-]*preferred[\s*_`\"']*[:\uff1a](?P<value>.*)$", re.I | re.M)
_NAMES = r"(?:(?:review|summary|option|answer|response|completion)\s+)"
_LABEL = re.compile(rf"{_NAMES}?([ab])", re.I)
_LEADING_LABEL = re.compile(rf"{_NAMES}?([ab])\b", re.I)
# What may set an explanation off from the label: "A (why)", "A - why", "A: why", "A, why".
_SEPARATORS = "([-\u2013\u2014:,;."
# An explanation that offers a second choice makes the answer ambiguous: "A, or B", "A (and B)".
_SECOND_CHOICE = re.compile(rf"\s*(?:(?:or|and|nor|vs\.?|versus)\b|{_NAMES}?[ab]\W*$)", re.I)
_NOISE = " \t\"'`*_.,;:!?()[]{}<>\u201c\u201d\u2018\u2019"
_MARKUP = " \t\"'`*_\u201c\u201d\u2018\u2019"


def _read_value(value: str) -> Verdict:
    """A, B or INVALID from the text after one `Preferred:`."""
    value = value.strip(_NOISE)
    if (label := _LABEL.fullmatch(value)) is not None:
        return Verdict(label.group(1).upper())
    head = _LEADING_LABEL.match(value)
    if head is None:
        return Verdict.INVALID
    rest = value[head.end() :].lstrip(_MARKUP)
    bare = head.group(0) == head.group(1)
    if not rest or rest[0] not in _SEPARATORS:
        return Verdict.INVALID  # "A or B", "A/B", "a tie", "A is ...": not one label
    if bare and head.group(1) == "a" and rest[0] == ".":
        return Verdict.INVALID  # "a. ..." reads as an article or a list marker, not a choice
    if _SECOND_CHOICE.match(rest[1:]):
        return Verdict.INVALID
    return Verdict(head.group(1).upper())


def parse_verdict(reply: str) -> Verdict:
    """A or B when every `Preferred:` line of the reply names it; INVALID otherwise."""
    reply = reply or ""
    verdicts = set()
    for match in _PREFERRED.finditer(reply):
        value = match.group("value")
        if not value.strip(_NOISE):  # "Preferred:" with the answer alone on the next line
            rest = [line for line in reply[match.end() :].splitlines() if line.strip(_NOISE)]
            value = rest[0] if rest else ""
        verdicts.add(_read_value(value))
    if len(verdicts) != 1:
        return Verdict.INVALID  # no Preferred line, or lines that disagree
    return verdicts.pop()


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
