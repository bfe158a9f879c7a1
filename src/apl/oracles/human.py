"""A person as the judge: shows the prompt and both completions in the terminal, reads A/B/tie/skip.

Pairs are shown in a seeded random order (humans have position bias too) and mapped back;
`skip` gives INVALID, which the caller drops or re-asks. Input and output streams can be
passed in, so it is scriptable and testable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from apl.errors import OracleError
from apl.oracles.base import (
    ORACLES,
    JudgementCache,
    JudgeRequest,
    Oracle,
    check_order_policy,
    choose_shown_order,
)
from apl.oracles.prompts import load_template
from apl.oracles.verdict import unswap
from apl.types import Judgement, Verdict

ANSWERS = {
    "a": Verdict.A,
    "b": Verdict.B,
    "tie": Verdict.TIE,
    "t": Verdict.TIE,
    "skip": Verdict.INVALID,
    "s": Verdict.INVALID,
}


@ORACLES.register("human")
class HumanJudge(Oracle):
    """Interactive terminal judge; one pair at a time."""

    temperature_option = ""  # a person has no temperature knob

    def __init__(
        self,
        annotator: str = "anonymous",  # part of the judge identity, so labels are per person
        order: str = "random",  # random | fixed ('both' would ask the same person twice)
        template: str = "sentiment",  # its question is shown as the instruction
        max_attempts: int = 3,  # unreadable answers before the pair counts as skipped
        input_stream: TextIO | None = None,
        console: Console | None = None,
        cache: JudgementCache | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(cache=cache, seed=seed)
        check_order_policy(order)
        if order == "both":
            raise OracleError("human judge: order 'both' is not supported; use random or fixed.")
        self.order = order
        self.max_attempts = max_attempts
        self.template = load_template(template)
        self.instruction = self.template.user.strip().splitlines()[0]
        self.input_stream = input_stream or sys.stdin
        self.console = console or Console(stderr=True)
        self.judge_id = f"human:{annotator}|tpl={self.template.digest}|order={order}"

    def shown_order(self, request: JudgeRequest) -> str:
        """Seeded per request, as for the LLM judge."""
        return choose_shown_order(self.order, self.seed, request)

    def judge(self, request: JudgeRequest) -> Judgement:
        """Show the pair and wait for an answer."""
        shown = self.shown_order(request)
        first, second = request.completion_a, request.completion_b
        if shown == "BA":
            first, second = second, first
        out = self.console
        out.rule("Which is better?")
        out.print(self.instruction, markup=False)
        out.print(Panel(Text(request.prompt), title="Prompt"))  # Text: no markup in user data
        out.print(Panel(Text(first), title="A", border_style="cyan"))
        out.print(Panel(Text(second), title="B", border_style="magenta"))
        started = time.monotonic()
        answer = None
        for _ in range(self.max_attempts):
            out.print("Your choice [A / B / tie / skip]: ", end="")
            line = self.input_stream.readline()
            if line == "":  # end of input: nothing more will come
                raise OracleError("human judge: input ended before an answer; run interactively.")
            answer = ANSWERS.get(line.strip().lower())
            if answer is not None:
                break
            out.print(
                f"Unrecognised answer {line.strip()!r}; type A, B, tie or skip.", markup=False
            )
        verdict = unswap(answer or Verdict.INVALID, shown)
        return Judgement(
            verdict=verdict,
            rationale=f"human {self.judge_id.split('|')[0]} chose {verdict.value}",
            shown_order=shown,
            latency_s=time.monotonic() - started,
            judge_id=self.judge_id,
        )
