"""Write docs/RESULTS.md for benchmarks/label_efficiency.py: command, plan arithmetic, findings, report."""

from __future__ import annotations

import math
import time
from pathlib import Path

from acquired_pairs import acquired_pairs_markdown

from apl.config import APLConfig
from apl.reports.collect import load_runs
from apl.reports.tables import aggregate, label_efficiency, random_references

# A hand-written analysis between these markers survives a regenerated RESULTS.md.
ANALYSIS_START, ANALYSIS_END = "<!-- analysis:start -->", "<!-- analysis:end -->"

READING = """\
## Reading the result: what can hide an active-learning gain here

These are the mechanisms to check against the evidence above before concluding anything;
each names the table or figure that tests it.

- **Cold start.** In round 1 the policy equals its reference, every implicit reward is 0,
  so `certainty` and `hybrid` choose at random (Figure 3's round-1 panels are all at 0.5).
  Their curves can only leave random's from the second labelled-set size on.
- **No room to move.** Each round retrains from theta_0 (`dpo.mode=reset`). If random's
  curve (Table 2) is already near 1.0 at the first size, or flat near 0.5, the win-rate is
  saturated or DPO barely moves the policy, and no choice of pairs can show.
- **Oracle noise.** The offline judge is a TF-IDF classifier: about 89% accurate on full
  reviews and 77% on 40-word snippets (docs/ORACLES.md); completions are 16-24 tokens.
  Certainty seeks the pairs where the policy is most confident; Figure 3's red bars near 0
  ("confidently wrong") are where it disagrees with the judge, and with a noisy judge some
  of those are the judge's mistakes, so certainty can concentrate label noise. Compare the
  "confidently wrong" column of certainty with random's.
- **Evaluation noise.** The standard errors in Table 2 come from `evaluation.num_prompts`
  prompts per run and the seeds; a difference under about two combined standard errors
  (the Findings' z) is not evidence either way.
- **Scale.** The paper's gap appeared at 256-768 labels with 1024 eval prompts and 9 seeds;
  the plan above is smaller to fit the hour, which favours "no clear difference".
"""


def ledger_phase_seconds(root: Path) -> dict[str, float]:
    """{run dir: seconds in the loop's timed phases}, from each ledger's `time/*` metrics."""
    groups, _ = load_runs([root])
    return {
        record.path.name: sum(
            v or 0.0 for m in record.metrics.values() for k, v in m.items() if k.startswith("time/")
        )
        for records in groups.values()
        for record in records
    }


def _findings(root: Path) -> str:
    groups, _ = load_runs([root])
    points = aggregate(groups)
    refs = random_references(groups)
    if "random" not in points:
        return "No random runs: nothing to compare against.\n"
    random = {p.labels: p for p in points["random"]}
    lines = [
        "| strategy | labels | mean | random | difference | z | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    better = worse = 0
    for strategy, pts in points.items():
        if strategy == "random":
            continue
        for p in pts:
            r = random.get(p.labels)
            if r is None:
                continue
            se = math.sqrt(sum(x * x for x in (p.stderr, r.stderr) if not math.isnan(x)))
            diff = p.mean - r.mean
            z = diff / se if se > 0 else math.nan
            verdict = "no clear difference"
            if z >= 2:
                verdict, better = "better than random", better + 1
            elif z <= -2:
                verdict, worse = "worse than random", worse + 1
            z_text = "-" if math.isnan(z) else f"{z:+.1f}"
            lines.append(
                f"| {strategy} | {p.labels} | {p.mean:.3f} | {r.mean:.3f} | {diff:+.3f} | "
                f"{z_text} | {verdict} |"
            )
    total = len(lines) - 2
    efficiency = [e for e in label_efficiency(points, refs)]
    last = max((e.labels for e in efficiency), default=None)
    ratios = ", ".join(f"{e.strategy} {e.text()}" for e in efficiency if e.labels == last)
    summary = (
        f"Of {total} (strategy, size) comparisons with random, {better} are better by at least two "
        f"combined standard errors (z >= 2), {worse} worse, and {total - better - worse} show no "
        "clear difference."
    )
    if last is not None:
        summary += f" At {last} labels, the labels random needs to match each strategy: {ratios}."
    return summary + "\n\n" + "\n".join(lines) + "\n"


def write_results(
    path: Path,
    report_md: Path,
    figures: Path,
    *,
    command: str,
    plan,
    tried,
    rates,
    wall_s: float,
    load: tuple[float, float],
    failed: list[str],
    smoke: bool,
    started: int,
    skipped: int,
    root: Path,
    run_config: APLConfig,
) -> Path:
    """Assemble RESULTS.md from the plan, the sweep's outcome and the report."""
    d, r = APLConfig(), run_config
    rel = figures.relative_to(path.parent).as_posix()
    report = report_md.read_text(encoding="utf-8").replace("# apl report\n", "", 1)
    for name in ("win_rate.png", "bt_histograms.png", "consistency.png"):
        report = report.replace(f"]({name})", f"]({rel}/{name})")
    report = report.replace("\n## ", "\n### ")
    phase_s = ledger_phase_seconds(root)
    parts = ["# Results: does active selection learn faster per label? (offline IMDB)\n"]
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if ANALYSIS_START in old and ANALYSIS_END in old:
        kept = old[old.index(ANALYSIS_START) : old.index(ANALYSIS_END) + len(ANALYSIS_END)]
        parts.append(kept + "\n")
    if smoke:
        parts.append(
            "**SMOKE TEST on a tiny random-weight model: the numbers below mean nothing.**\n"
        )
    parts += [
        "## How this was produced\n",
        f"- Command (repo root): `{command}`; finished {time.strftime('%Y-%m-%d %H:%M')}.",
        (
            f"- Sweep wall time {wall_s / 60:.1f} min for the {started} runs this invocation "
            f"started ({skipped} already complete were skipped), {plan.workers} at a time, one "
            f"CPU thread each; load average {load[0]:.1f} at the start and {load[1]:.1f} at the "
            "end (the machine was shared with other jobs if these exceed the core count)."
            if started
            else f"- All {skipped} runs were complete from earlier invocations of the same "
            "command; this one only rebuilt the report and this file."
        ),
        (
            f"- Phase time recorded in the ledgers, summed over all {len(phase_s)} runs: "
            f"{sum(phase_s.values()) / 3600:.2f} h (generate, score, label, train, evaluate; "
            "start-up and baselines excluded), i.e. about "
            f"{sum(phase_s.values()) / plan.workers / 60:.0f} min at {plan.workers} runs at a time."
        ),
        f"- Failed runs: {', '.join(failed) or 'none'}.",
        (
            f"- Protocol: `apl run`'s offline defaults from `src/apl/config.py` (task "
            f"`{r.task.name}`, model `{r.model.model_name_or_path}`, oracle `{r.oracle.name}`, "
            f"DPO `{r.dpo.mode}` mode, beta {r.dpo.beta}, lr {r.dpo.learning_rate:g}, batch "
            f"{r.dpo.per_device_train_batch_size}, evaluation against the initial model), with "
            f"only these sizes set: query size M={plan.query_size}, pool S={plan.pool_size}, "
            f"{plan.num_rounds} rounds (budget {plan.query_size * plan.num_rounds}), "
            f"{plan.epochs} epochs, {plan.eval_prompts} eval prompts, seeds 0-{plan.seeds - 1}.\n"
        ),
    ]
    if rates is not None:
        full = next(
            p
            for p in tried
            if p.query_size == d.loop.query_size and p.num_rounds == d.loop.num_rounds
        )
        parts += [
            "### Why these sizes\n",
            (
                f"Measured on this machine at one thread: DPO {rates.train_pairs_s:.1f} pairs/s, "
                f"scoring {rates.score_seqs_s:.0f} sequences/s, sampling "
                f"{rates.sample_seqs_s:.0f} completions/s. A run costs about 30 s of start-up "
                "plus, per round t: sampling (entropy: 8 samples per pool prompt; hybrid: 8 per "
                "prompt of its J x S pool; certainty and hybrid: a pair per pool prompt; random "
                "and entropy: a pair per kept prompt), reference scoring of those pairs, "
                "E x t x M DPO pairs (reset mode retrains on every label) and N eval "
                f"completions. At the defaults (M={d.loop.query_size}, S={d.loop.pool_size}, "
                f"{d.loop.num_rounds} rounds) the sweep would take about "
                f"{full.total_s / 3600:.1f} h on {plan.workers} cores; the script keeps E, lr and "
                "S/M and picks the largest labelled set that fits (the estimate assumes each "
                "run has a whole core; a shared machine takes longer):\n"
            ),
            "| M | S | rounds | " + " | ".join(f"{s} s/run" for s in plan.run_s) + " | sweep min |",
            "|---:|---:|---:|" + "---:|" * (len(plan.run_s) + 1),
            *[
                f"| {p.query_size} | {p.pool_size} | {p.num_rounds} | "
                + " | ".join(f"{v:.0f}" for v in p.run_s.values())
                + f" | {p.total_s / 60:.0f} |"
                for p in tried
            ],
            "",
        ]
    parts += ["## Findings\n", _findings(root), "## Report (`apl report`)\n", report]
    repo = path.parent.parent
    shown = root.relative_to(repo) if root.is_relative_to(repo) else root
    parts += [
        f"## What each strategy acquired (`python benchmarks/acquired_pairs.py {shown}`)\n",
        acquired_pairs_markdown([root]),
        READING,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
