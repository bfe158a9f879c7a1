"""What each acquisition function bought, read from finished runs' ledgers (no model is run).

For every strategy (acquisition name plus any option that differs from the default) and round,
averaged over seeds, of the M pairs sent to the oracle:

- gap: mean |r_a - r_b| under DPO's implicit reward (0 in round 1: policy = reference);
- agree: share of A/B verdicts that match the policy's own preference sign(r_a - r_b)
  (round 2 on; the pairs DPO learns least from are the ones it already agrees with);
- penalty: mean `degeneracy_penalty` of the two completions (the judge's charge for
  repetition and junk, 0 for fluent text; docs/ORACLES.md);
- dlen: mean |token count of A - token count of B|;

and, of the policy's evaluation completions after that round:

- eval penalty: their mean `degeneracy_penalty` (reward hacking would show up here); round 0
  is the initial model's completions for the same prompts;
- win: the round's win-rate, and win sd / min / max: its spread over seeds (in round 1
  certainty and hybrid choose at random, so their spread there is that of random choice).

The implicit reward's calibration (confidence against the oracle's agreement) is a section of
`apl report` (apl.reports.calibration).

    python benchmarks/acquired_pairs.py runs/label-efficiency [runs/certainty-variants ...]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from apl.oracles.imdb_judge import degeneracy_penalty
from apl.reports.collect import load_runs
from apl.store.ledger import Ledger
from apl.types import Verdict

COLUMNS = ("gap", "agree", "penalty", "dlen", "eval penalty", "win")


def run_rounds(run: Path) -> dict[int, dict[str, float]]:
    """{round: {column: value}} for one run."""
    cols: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with Ledger(run / "ledger.sqlite") as ledger:
        for round_ in ledger.rounds():
            verdicts = ledger.verdicts(round_)
            for candidate in ledger.candidates(round_):
                judgement = verdicts.get(candidate.id)
                if judgement is None:
                    continue  # scored but never sent to the oracle
                pair, verdict = candidate.pair, judgement.verdict
                r_a, r_b = pair.extras.get("reward_a"), pair.extras.get("reward_b")
                if r_a is not None and r_b is not None:
                    cols[round_]["gap"].append(abs(r_a - r_b))
                    if round_ > 1 and verdict in (Verdict.A, Verdict.B) and r_a != r_b:
                        agreed = float((verdict is Verdict.A) == (r_a > r_b))
                        cols[round_]["agree"].append(agreed)
                prompt = pair.prompt.text
                penalties = [degeneracy_penalty(prompt, c.text) for c in (pair.a, pair.b)]
                cols[round_]["penalty"].append(statistics.fmean(penalties))
                cols[round_]["dlen"].append(abs(len(pair.a.token_ids) - len(pair.b.token_ids)))
        prompts = {p.uid: p.text for p in ledger.eval_prompts()}
        evaluated = {0: ledger.baseline()} | {
            r: ledger.eval_completions(r) for r in ledger.rounds()
        }
        for round_, completions in evaluated.items():
            for uid, completion in completions.items():
                cols[round_]["eval penalty"].append(
                    degeneracy_penalty(prompts[uid], completion.text)
                )
        for round_, metrics in ledger.metrics().items():
            if metrics.get("eval/win_rate") is not None:
                cols[round_]["win"].append(metrics["eval/win_rate"])
    return {r: {k: statistics.fmean(v) for k, v in c.items() if v} for r, c in cols.items()}


def acquired_pairs_markdown(roots: list[Path]) -> str:
    """The strategy x round table as Markdown, over every run under `roots`."""
    table: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    groups, _ = load_runs(roots)
    for strategy, records in groups.items():
        for record in records:
            for round_, cols in run_rounds(record.path).items():
                for key, value in cols.items():
                    table[strategy][round_][key].append(value)
    lines = [
        "| strategy | round | seeds | " + " | ".join(COLUMNS) + " | win sd | win min | win max |",
        "|---|---:|---:|" + "---:|" * (len(COLUMNS) + 3),
    ]
    for strategy, rounds in table.items():
        for round_ in sorted(rounds):
            cols = rounds[round_]
            cells = [f"{statistics.fmean(cols[c]):.3f}" if cols.get(c) else "-" for c in COLUMNS]
            wins = cols.get("win", [])
            spread = [statistics.stdev(wins), min(wins), max(wins)] if len(wins) > 1 else []
            cells += [f"{v:.3f}" for v in spread] or ["-"] * 3
            seeds = max(len(v) for v in cols.values())
            lines.append(f"| {strategy} | {round_} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the tables for the sweep roots or run directories given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="Sweep roots or run directories.")
    print(acquired_pairs_markdown(parser.parse_args().roots), end="")


if __name__ == "__main__":
    main()
