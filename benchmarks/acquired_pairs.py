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

A second table checks the implicit reward model's calibration, pooled over rounds 2+ and
seeds per strategy: binned by gap, the Bradley-Terry probability sigmoid(gap) it predicts for
its preferred completion against how often the oracle agreed.

    python benchmarks/acquired_pairs.py runs/label-efficiency [runs/certainty-variants ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from apl.oracles.imdb_judge import degeneracy_penalty

GAP_BINS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, math.inf)
COLUMNS = ("gap", "agree", "penalty", "dlen", "eval penalty", "win")


def strategy_name(config: dict) -> str:
    """`certainty`, or `certainty (direction=least)` when an option differs from the default."""
    acquisition = dict(config.get("acquisition", {}))
    name = acquisition.pop("name", "certainty")
    options = ", ".join(f"{k}={v}" for k, v in sorted(acquisition.items()))
    return f"{name} ({options})" if options else name


def baseline_completions(run: Path, prompts: dict[str, str]) -> list[dict]:
    """The initial model's eval completions for this run's prompts, from the sweep's cache."""
    for path in (run.parent / "baselines").glob("baseline-*.json"):
        completions = json.loads(path.read_text())["completions"]
        if {c["uid"] for c in completions} == set(prompts):
            return completions
    return []


def run_rounds(run: Path) -> tuple[dict[int, dict[str, float]], list[tuple[float, float]]]:
    """({round: {column: value}}, [(gap, agreed) per judged pair of round 2+]) for one run."""
    db = sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True)
    out: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows = db.execute(
        "SELECT c.round, c.prompt_text, c.a_text, c.b_text, c.a_token_ids, c.b_token_ids, "
        "c.extras, v.verdict FROM candidates c JOIN verdicts v ON v.candidate_id = c.id"
    )
    for round_, prompt, a, b, a_ids, b_ids, extras, verdict in rows:
        cols = out[round_]
        out_pairs = out[-1]
        rewards = json.loads(extras)
        r_a, r_b = rewards.get("reward_a"), rewards.get("reward_b")
        if r_a is not None and r_b is not None:
            cols["gap"].append(abs(r_a - r_b))
            if round_ > 1 and verdict in ("A", "B") and r_a != r_b:
                cols["agree"].append(float((verdict == "A") == (r_a > r_b)))
                out_pairs["pairs"].append((abs(r_a - r_b), cols["agree"][-1]))
        cols["penalty"].append((degeneracy_penalty(prompt, a) + degeneracy_penalty(prompt, b)) / 2)
        cols["dlen"].append(abs(len(json.loads(a_ids)) - len(json.loads(b_ids))))
    evals = db.execute(
        "SELECT e.round, p.text, e.text FROM eval_completions e JOIN eval_prompts p USING (uid)"
    )
    for round_, prompt, completion in evals:
        out[round_]["eval penalty"].append(degeneracy_penalty(prompt, completion))
    prompts = dict(db.execute("SELECT uid, text FROM eval_prompts"))
    for completion in baseline_completions(run, prompts):
        out[0]["eval penalty"].append(
            degeneracy_penalty(prompts[completion["uid"]], completion["text"])
        )
    for round_, value in db.execute("SELECT round, value FROM metrics WHERE key='eval/win_rate'"):
        out[round_]["win"].append(value)
    db.close()
    pairs = out.pop(-1, {}).get("pairs", [])
    means = {r: {k: statistics.fmean(v) for k, v in cols.items() if v} for r, cols in out.items()}
    return means, pairs


def calibration_table(pairs: dict[str, list[tuple[float, float]]]) -> list[str]:
    """Predicted sigmoid(gap) against the oracle's observed agreement, per gap bin."""
    lines = ["| strategy | gap | pairs | predicted | observed |", "|---|---|---:|---:|---:|"]
    for strategy, items in pairs.items():
        for lo, hi in zip(GAP_BINS, GAP_BINS[1:], strict=False):
            held = [(g, a) for g, a in items if lo <= g < hi]
            if held:
                predicted = statistics.fmean(1 / (1 + math.exp(-g)) for g, _ in held)
                observed = statistics.fmean(a for _, a in held)
                lines.append(
                    f"| {strategy} | {lo:g}-{hi:g} | {len(held)} | {predicted:.2f} | {observed:.2f} |"
                )
    return lines


def acquired_pairs_markdown(roots: list[Path]) -> str:
    """Both tables (strategy x round, then calibration) as Markdown, over every run under `roots`."""
    table: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    runs = sorted({p.parent for root in roots for p in Path(root).glob("**/ledger.sqlite")})
    for run in runs:
        config = yaml.safe_load((run / "config.yaml").read_text())
        means, run_pairs = run_rounds(run)
        pairs[strategy_name(config)] += run_pairs
        for round_, cols in means.items():
            for key, value in cols.items():
                table[strategy_name(config)][round_][key].append(value)
    lines = [
        "| strategy | round | seeds | " + " | ".join(COLUMNS) + " | win sd | win min | win max |",
        "|---|---:|---:|" + "---:|" * (len(COLUMNS) + 3),
    ]
    for strategy, rounds in sorted(table.items()):
        for round_ in sorted(rounds):
            cols = rounds[round_]
            cells = [f"{statistics.fmean(cols[c]):.3f}" if cols.get(c) else "-" for c in COLUMNS]
            wins = cols.get("win", [])
            spread = [statistics.stdev(wins), min(wins), max(wins)] if len(wins) > 1 else []
            cells += [f"{v:.3f}" for v in spread] or ["-"] * 3
            seeds = max(len(v) for v in cols.values())
            lines.append(f"| {strategy} | {round_} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""] + calibration_table(dict(sorted(pairs.items())))) + "\n"


def main() -> None:
    """Print the tables for the sweep roots or run directories given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="Sweep roots or run directories.")
    print(acquired_pairs_markdown(parser.parse_args().roots), end="")


if __name__ == "__main__":
    main()
