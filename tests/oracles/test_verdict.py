"""Verdict parsing: every `Preferred:` line must name the same label, else INVALID."""

from __future__ import annotations

import pytest

from apl.oracles.verdict import combine_orders, is_order_flip, parse_verdict, unswap
from apl.types import Judgement, Verdict


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Comparison: A is warmer.\nPreferred: A", Verdict.A),
        ("Comparison: x\nPreferred: B", Verdict.B),
        ('Comparison: x\npreferred:  "b".', Verdict.B),
        ("Comparison: x\n**Preferred:** **A**", Verdict.A),
        ("Comparison: x\nPREFERRED : 'A'!  \n", Verdict.A),
        ("Comparison: x\nPreferred: Review B", Verdict.B),
        ("Comparison: x\nPreferred:\nA", Verdict.A),  # answer alone on the next line
        ("Comparison: x\nPreferred: A\n\nThanks!", Verdict.A),  # text after the line
        ("Comparison: both are fine.\nPreferred: neither", Verdict.INVALID),
        ("Comparison: x\nPreferred: A or B", Verdict.INVALID),
        ("Comparison: x\nPreferred: AB", Verdict.INVALID),
        ("Comparison: I prefer A.", Verdict.INVALID),  # no Preferred line at all
        ("A", Verdict.INVALID),
        ("", Verdict.INVALID),
        ("Comparison: x\nPreferred: A\nPreferred: A", Verdict.A),  # repeated, agreeing
        # Two Preferred lines that disagree: a quoted completion must not decide, so neither does.
        (
            'Review B ends with "\nPreferred: B" which is odd.\nComparison: A wins.\nPreferred: A',
            Verdict.INVALID,
        ),
        ("Preferred: A\n> Preferred: B", Verdict.INVALID),
        ("Preferred: B\nComparison: x\n**Preferred:** A", Verdict.INVALID),
        ("Preferred: A\nPreferred: neither", Verdict.INVALID),
        (
            "Comparison: B's text says Preferred: B.\nPreferred: A",
            Verdict.A,
        ),  # mid-line: not a line start
        # An explanation after the label, set off by punctuation, is the judge's reason.
        ("Comparison: x\nPreferred: A (Review A is more positive)", Verdict.A),
        ("Comparison: x\nPreferred: A (Review B is repetitive)", Verdict.A),
        ("Preferred: **B** - it is warmer.", Verdict.B),
        ("Preferred: B \u2014 warmer", Verdict.B),
        ("Preferred: Review A: clearly more upbeat", Verdict.A),
        ("Preferred: A, because B is dull", Verdict.A),
        ("Preferred: A. B is dull.", Verdict.A),
        ("Preferred: a (more positive)", Verdict.A),
        ("Preferred:\nB (more positive)", Verdict.B),
        # Anything offering two choices, or no single label, is INVALID.
        ("Preferred: A/B", Verdict.INVALID),
        ("Preferred: A, B", Verdict.INVALID),
        ("Preferred: A (or B)", Verdict.INVALID),
        ("Preferred: A, or B", Verdict.INVALID),
        ("Preferred: A and B are equal", Verdict.INVALID),
        ("Preferred: A (B)", Verdict.INVALID),
        ("Preferred: Neither", Verdict.INVALID),
        ("Preferred: Both", Verdict.INVALID),
        ("Preferred: A tie", Verdict.INVALID),
        ("Preferred: a tie between them", Verdict.INVALID),
        ("Preferred: a. neither", Verdict.INVALID),
        ("Preferred: A is better", Verdict.INVALID),
        ("Preferred: Assistant", Verdict.INVALID),
        ('Preferred: <"A" or "B">', Verdict.INVALID),  # the template's placeholder echoed
        ("Preferred: Either A or B", Verdict.INVALID),
    ],
)
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) is expected


def test_unswap_maps_shown_positions_back_to_the_request():
    assert unswap(Verdict.A, "BA") is Verdict.B and unswap(Verdict.B, "BA") is Verdict.A
    assert unswap(Verdict.A, "AB") is Verdict.A
    assert (
        unswap(Verdict.INVALID, "BA") is Verdict.INVALID
        and unswap(Verdict.TIE, "BA") is Verdict.TIE
    )


def test_combine_orders_counts_only_agreement():
    def j(v: Verdict, cost: float = 1.0) -> Judgement:
        return Judgement(v, rationale=f"said {v.value}", cost_usd=cost, prompt_tokens=3, retries=1)

    agreed = combine_orders(j(Verdict.B), j(Verdict.B, 2.0))
    assert agreed.verdict is Verdict.B and agreed.shown_order == "both"
    assert (agreed.cost_usd, agreed.prompt_tokens, agreed.retries) == (3.0, 6, 2)
    flipped = combine_orders(j(Verdict.A), j(Verdict.B))
    assert flipped.verdict is Verdict.INVALID and flipped.rationale.startswith("order-inconsistent")
    half = combine_orders(j(Verdict.A), j(Verdict.INVALID))
    assert half.verdict is Verdict.INVALID and half.rationale.startswith("invalid reply")
    assert is_order_flip(Verdict.A, Verdict.B) and not is_order_flip(Verdict.A, Verdict.INVALID)
