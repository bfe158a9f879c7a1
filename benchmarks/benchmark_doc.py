"""Write docs/RESULTS.md for benchmarks/benchmark.py: protocol, plan, findings, noise, reports."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

from benchmark_plan import TARGET_MDD, Plan, Regime, plan_markdown
from noise import METRICS, binary_per_expected, noise_markdown, paired_sd

from apl.reports.collect import load_runs
from apl.reports.paired import efficiency_intervals, paired_differences
from apl.reports.tables import random_references

RESULT_Z = 2.5  # docs/PROTOCOL.md: one-sided Bonferroni over the 7 primary comparisons
SECONDARY = "secondary (reported; the verdict rule is for the primary comparisons)"
# A hand-written analysis between these markers survives a regenerated RESULTS.md.
ANALYSIS_START, ANALYSIS_END = "<!-- analysis:start -->", "<!-- analysis:end -->"


def random_curve(groups, reference: str, metric: str) -> list[tuple[int, float]]:
    """(labels, mean over seeds) of the random reference's `metric`, ascending."""
    by: dict[int, list[float]] = {}
    for run in groups[reference]:
        for n, v in run.metric_by_size(metric).items():
            by.setdefault(n, []).append(v)
    return sorted((n, sum(v) / len(v)) for n, v in by.items())


def at(curve: list[tuple[int, float]], x: float) -> float:
    """Linear interpolation on the curve, extended along its first/last segment."""
    if len(curve) < 2:
        return math.nan
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x <= x1 or (x1, y1) == curve[-1]:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return math.nan


def informative(d) -> bool:
    """A paired difference with a spread: not one seed, not identical runs by construction.

    At the first size, strategies that are random at cold start label random's own pairs, so
    their difference is exactly 0 on every seed: nothing was compared there.
    """
    return not math.isnan(d.stderr) and not (d.stderr == 0 and d.mean == 0)


def one_sided_p(z: float, pairs: int) -> float:
    """P(T >= z) for Student's t with pairs - 1 degrees of freedom: the paired z is a t."""
    from scipy.stats import t

    return float(t.sf(z, pairs - 1)) if pairs > 1 and not math.isnan(z) else math.nan


def verdict(d, expected, interval) -> str:
    """docs/PROTOCOL.md's rule at the largest size: z, the expected win-rate's sign, the interval.

    Saves labels: z >= 2.5, the expected win-rate difference positive too, and the lower end of
    the labels-random-needs interval above the strategy's own labels (a saving above 1x). Worse:
    the mirror (z <= -2.5, expected negative, the upper end below its own labels).
    """
    if expected is None or interval is None or math.isnan(d.z):
        return "no result (a part of the rule could not be computed)"
    if d.z >= RESULT_Z and expected.mean > 0 and interval.low > interval.labels:
        return "**saves labels**"
    if d.z <= -RESULT_Z and expected.mean < 0 and interval.high < interval.labels:
        return "**worse than random**"
    if abs(d.z) >= RESULT_Z:
        return "no result (|z| >= 2.5, but the expected win-rate or the interval disagrees)"
    return "no result (|z| < 2.5)"


def saving_power(root: Path, metric: str = METRICS[0]) -> list[str]:
    """The gain a 1.25x label saving would show, against 2 SE of the paired difference.

    At each strategy's largest size n whose 1.25 n is still on random's curve (else the largest
    size, random's last segment extended): a strategy saving 1.25x reaches at n what random
    reaches at 1.25 n. Random's curve is the mean of its complete runs.
    """
    groups, _ = load_runs([root])
    refs = random_references(groups)
    groups = {k: [r for r in runs if r.complete] for k, runs in groups.items()}
    rows = [d for d in paired_differences(groups, refs, metric) if informative(d)]
    lines = []
    for strategy in dict.fromkeys(d.strategy for d in rows):
        curve = random_curve(groups, refs[strategy], metric)
        mine = [r for r in rows if r.strategy == strategy]
        inside = [r for r in mine if curve and r.labels * 1.25 <= curve[-1][0]]
        d = max(inside or mine, key=lambda r: r.labels)  # where random's curve reaches 1.25x
        gain = at(curve, d.labels * 1.25) - at(curve, d.labels)
        if math.isnan(gain):
            continue
        if gain <= 0:
            lines.append(
                f"  - {strategy} at {d.labels} labels: random's mean curve does not rise from "
                f"{d.labels} to {d.labels * 1.25:.0f} labels, so no saving can show there."
            )
            continue
        seen = 2 * d.stderr <= gain
        sd = d.stderr * math.sqrt(len(d.seeds))
        lines.append(
            f"  - {strategy} at {d.labels} labels: a 1.25x saving would show as "
            f"{gain:+.3f} (random's curve from {d.labels} to {d.labels * 1.25:.0f} labels); 2 SE "
            f"with {len(d.seeds)} seeds is {2 * d.stderr:.3f}, so this size "
            + (
                "**could have seen it**."
                if seen
                else "**could not have seen it** (a null is inconclusive); seeing it at 2 SE "
                f"would take about {math.ceil((2 * sd / gain) ** 2)} seeds (paired sd {sd:.3f})."
            )
        )
    return lines


def findings(root: Path, regime: Regime, planned: dict[str, int], slope: float) -> str:
    """The protocol's verdicts at each strategy's largest size, other differences, power, savings.

    Only complete runs count (an unfinished run's seed has no pair at the largest size);
    `planned` is the plan's seeds per strategy, so missing seeds are said. `slope` converts an
    expected win-rate difference to win-rate units (noise.binary_per_expected).
    """
    groups, _ = load_runs([root])
    refs = random_references(groups)
    groups = {k: [r for r in runs if r.complete] for k, runs in groups.items()}
    rows = {m: paired_differences(groups, refs, m) for m in METRICS}
    binary = [d for d in rows[METRICS[0]] if informative(d)]
    expected = {(d.strategy, d.labels): d for d in rows[METRICS[1]]}
    intervals = {(e.strategy, e.labels): e for e in efficiency_intervals(groups, refs)}
    lines = []
    top_of: dict[str, int] = {}  # each strategy's largest size with pairs: where it is judged
    for d in rows[METRICS[0]]:
        top_of[d.strategy] = max(top_of.get(d.strategy, 0), d.labels)
    for d in rows[METRICS[0]]:
        if d.labels == top_of[d.strategy] and not informative(d):
            lines.append(
                f"- {d.strategy} at {d.labels} labels: equal to random on every one of its "
                f"{len(d.seeds)} seeds (nothing to compare): no result."
            )
    for d in (d for d in binary if d.labels == top_of[d.strategy]):
        e = expected.get((d.strategy, d.labels))
        interval = intervals.get((d.strategy, d.labels))
        plan = planned.get(d.strategy)
        short = (
            f" (planned {plan}; the missing seeds failed or are unfinished)"
            if plan and len(d.seeds) < plan
            else ""
        )
        converted = (
            f" (~{e.mean * slope:+.3f} in win-rate units)" if e and not math.isnan(slope) else ""
        )
        saving = (
            f", random needs {interval.ratio_text(interval.random_labels)} its labels "
            f"({interval.ratio_text(interval.low)} to {interval.ratio_text(interval.high)})"
            if interval
            else ""
        )
        judged = (
            SECONDARY  # the rule's Bonferroni covers the primary comparisons only
            if d.strategy.split(" ")[0] in regime.secondary
            else verdict(d, e, interval)
        )
        lines.append(
            f"- {d.strategy} at {d.labels} labels: {d.mean:+.3f} ± {d.stderr:.3f} win-rate "
            f"(z {d.z:+.1f}, one-sided p {one_sided_p(d.z, len(d.seeds)):.3f} by t with "
            f"{len(d.seeds) - 1} df; {len(d.seeds)} seeds{short})"
            + (f", expected win-rate {e.mean:+.3f} ± {e.stderr:.3f}{converted}" if e else "")
            + saving
            + f": {judged}."
        )
    if binary:
        other = [d for d in binary if d.labels != top_of[d.strategy] and abs(d.z) >= 2]
        if other:
            lines.append(
                "- At smaller sizes, |z| >= 2 (reported, not called results): "
                + ", ".join(
                    f"{d.strategy} at {d.labels} ({d.mean:+.3f}, z {d.z:+.1f})" for d in other
                )
                + "."
            )
        mdd = sorted(2 * d.stderr for d in binary)
        lines.append(
            f"- 2 SE of the paired win-rate differences: {mdd[0]:.3f}-{mdd[-1]:.3f} (median "
            f"{statistics.median(mdd):.3f}; the target was {TARGET_MDD})."
        )
        lines.append(
            f"- Reading the rule: z is a t statistic with (seeds - 1) degrees of freedom, so at "
            f"5 seeds z >= {RESULT_Z} is a one-sided p of about "
            f"{one_sided_p(RESULT_Z, 5):.3f} per comparison, not the 0.05 / 7 the protocol's "
            "normal approximation assumed; a verdict here is weaker evidence than its z suggests. "
            "At the largest size random's curve ends, so a strategy above it gets "
            "'> 1.00x' (random never gets there with these labels), not a number."
        )
    power = saving_power(root)
    if power:
        lines.append("- Power against a 1.25x label saving (win-rate, paired by seed):")
        lines += power
    return "\n".join(lines) + "\n"


def _commit(root: Path) -> str:
    """The commit the runs' code was recorded at (benchmark.py's code.json), else HEAD's."""
    import json
    import subprocess

    recorded = root / "code.json"
    if recorded.is_file():
        code = json.loads(recorded.read_text())
        note = " (code changes accepted since; docs/PROTOCOL.md)" if "earlier" in code else ""
        return code["commit"][:7] + note
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _report_body(path: Path, regime: str, figures: Path, results: Path) -> str:
    text = path.read_text(encoding="utf-8").replace("# apl report\n", "", 1)
    rel = figures.relative_to(results.parent).as_posix()
    for name in ("win_rate.png", "bt_histograms.png"):
        text = text.replace(f"]({name})", f"]({rel}/{regime}_{name})")
    return text.replace("\n### ", "\n#### ").replace("\n## ", "\n### ")


def _run_lines(root: Path, regimes, plan: Plan, outcomes: dict | None, wall_s, load) -> list[str]:
    """What this invocation ran, or (`outcomes` None: --report-only) which runs are finished."""
    if outcomes is None:
        runs = [r for g in regimes for rs in load_runs([root / g.name])[0].values() for r in rs]
        unfinished = [f"{r.path.parent.name}/{r.path.name}" for r in runs if not r.complete]
        return [
            f"- Protocol: docs/PROTOCOL.md (pre-registered). Runs under `{root.name}/`: report "
            f"only (`--report-only`, nothing run); {len(runs) - len(unfinished)} complete, "
            + (
                f"unfinished: {', '.join(unfinished)} (rerun the command to finish them)."
                if unfinished
                else "none unfinished."
            )
        ]
    started = sum(o.action != "skip" for sweep in outcomes.values() for o in sweep.outcomes)
    skipped = sum(o.action == "skip" for sweep in outcomes.values() for o in sweep.outcomes)
    failed = [o.name for sweep in outcomes.values() for o in sweep.failed]
    return [
        f"- Protocol: docs/PROTOCOL.md (pre-registered). Runs under `{root.name}/`: "
        f"{started} run by this invocation, {skipped} already complete; failed: "
        f"{', '.join(failed) or 'none'}.",
        f"- Wall time of this invocation {wall_s / 60:.1f} min on {plan.workers} workers, one "
        f"CPU thread each; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        "(the machine was shared if these exceed the core count).",
    ]


def write_results(
    path: Path,
    *,
    regimes: tuple[Regime, ...],
    plan: Plan,
    reports: dict[str, Path],
    figures: Path,
    root: Path,
    measured: list[dict],
    command: str,
    wall_s: float,
    load: tuple[float, float],
    outcomes: dict | None,
    smoke: bool,
) -> Path:
    """Assemble RESULTS.md, keeping the hand-written analysis block of the previous file."""
    parts = ["# Results: does active selection learn faster per label? (offline IMDB)\n"]
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if ANALYSIS_START in old and ANALYSIS_END in old:
        parts.append(old[old.index(ANALYSIS_START) : old.index(ANALYSIS_END) + len(ANALYSIS_END)])
        parts.append("")
    if smoke:
        parts.append(
            "**SMOKE TEST on a tiny random-weight model: the numbers below mean nothing.**\n"
        )
    parts += [
        "## How this was produced\n",
        f"- Command (repo root): `{command}`; finished {time.strftime('%Y-%m-%d %H:%M')}; the "
        f"runs' code: commit {_commit(root)}.",
        *_run_lines(root, regimes, plan, outcomes, wall_s, load),
        "",
        "### The plan (made " + plan.made + " from rates measured on this machine)\n",
        plan_markdown(plan),
        "## Findings\n",
    ]
    slope = binary_per_expected(*(root / r.name for r in regimes))
    for regime in regimes:
        planned = plan.seeds.get(regime.name, {})
        parts += [
            f"### {regime.name} regime\n",
            findings(root / regime.name, regime, planned, slope),
        ]
    parts += [
        "## Noise: where a run's spread comes from, and what these seeds can see\n",
        (
            "Standard deviation of the final value over seeds of the random runs, split into "
            "evaluation sampling, DPO training and the labels bought (benchmarks/noise.py); then "
            "the pooled sd of every strategy-minus-random difference paired by seed, and the "
            "minimum detectable difference (2 SE) it implies at 5, 10 and 20 seeds.\n"
        ),
        noise_markdown(root / regimes[0].name, measured, slope=slope),
    ]
    sd, _, _ = paired_sd(root / regimes[0].name, METRICS[0])
    if not math.isnan(sd):
        needed = math.ceil((2 * sd / TARGET_MDD) ** 2)
        parts.append(
            f"To detect {TARGET_MDD} win-rate at 2 SE with this paired sd ({sd:.3f}) needs "
            f"{needed} seeds per strategy; the plan afforded {max(plan.seeds[regimes[0].name].values())}.\n"
        )
    for regime in regimes:
        parts += [
            f"## Report: {regime.name} regime (`apl report {root.name}/{regime.name}`)\n",
            _report_body(reports[regime.name], regime.name, figures, path),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
