"""`apl report`: runs and sweeps -> report.md with Table 2, Figures 2-3, label efficiency, spend, CSV."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from apl.errors import DataError
from apl.reports.annotators import annotators_markdown
from apl.reports.calibration import calibration, calibration_markdown
from apl.reports.collect import RunRecord, load_runs
from apl.reports.compute import compute_markdown
from apl.reports.figures import bt_histograms, histogram_markdown, plot_bt_histograms, plot_win_rate
from apl.reports.paired import (
    METRICS,
    efficiency_interval_markdown,
    efficiency_intervals,
    paired_differences,
    paired_markdown,
)
from apl.reports.tables import (
    aggregate,
    efficiency_markdown,
    label_efficiency,
    random_references,
    spend_markdown,
    table2_markdown,
    write_csvs,
)

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    markdown: Path
    files: list[Path] = field(default_factory=list)
    num_runs: int = 0
    num_groups: int = 0


def _consistency_section(directory: Path, out_dir: Path) -> tuple[str, list[Path]]:
    from apl.oracles.consistency import ConsistencyResult, consistency_markdown

    source = directory / "consistency.json"
    if not source.is_file():
        raise DataError(
            f"--consistency {directory} holds no consistency.json; pass the --output-dir of "
            "`apl judge consistency`."
        )
    try:
        results = [
            ConsistencyResult(**row) for row in json.loads(source.read_text(encoding="utf-8"))
        ]
    except (ValueError, TypeError) as err:
        raise DataError(
            f"--consistency {source} is not an `apl judge consistency` result: {err}"
        ) from None
    text = (
        "## Judge self-consistency (paper Figure 1)\n\nThe same pairs labelled twice per judge.\n\n"
    )
    text += consistency_markdown(results)
    copied = []
    if (directory / "consistency.png").is_file():
        copied.append(Path(shutil.copy(directory / "consistency.png", out_dir / "consistency.png")))
        text += "\n![judge self-consistency](consistency.png)\n"
    return text, copied


def _describe(groups: dict[str, list[RunRecord]], by: list[str]) -> str:
    runs = [r for rs in groups.values() for r in rs]
    first = runs[0].config
    lines = [
        (
            f"{len(runs)} runs in {len(groups)} strategies, grouped by "
            f"{', '.join(f'`{k}`' for k in by)}; seeds are pooled. Win-rate is the policy's "
            f"against the evaluation baseline (`evaluation.baseline={first.evaluation.baseline}`, "
            f"task `{first.task.name}`) on `evaluation.num_prompts="
            f"{first.evaluation.num_prompts}` held-out prompts, judged by `{first.oracle.name}`."
        ),
        "",
        "| strategy | seeds | runs complete |",
        "|---|---|---:|",
    ]
    for strategy, rs in groups.items():
        lines.append(
            f"| {strategy} | {', '.join(str(r.seed) for r in rs)} | {sum(r.complete for r in rs)}/{len(rs)} |"
        )
    incomplete = [r.path.name for r in runs if not r.complete]  # no machine path in a report
    if incomplete:
        lines += [
            "",
            f"Incomplete runs (their evaluated rounds are included): {', '.join(incomplete)}.",
        ]
    return "\n".join(lines) + "\n"


def report_markdown(
    groups: dict[str, list[RunRecord]], by: list[str], out_dir: Path
) -> tuple[str, list[Path]]:
    """Build the report text and write its figures and CSVs into `out_dir`."""
    points = aggregate(groups)
    files = write_csvs(groups, points, out_dir)
    files.append(plot_win_rate(points, out_dir / "win_rate.png"))
    hists = bt_histograms(groups)
    references = random_references(groups)
    parts = ["# apl report\n", _describe(groups, by), *_paired_section(groups, references)]
    parts += [
        "## Win-rate at each labelled-set size, seeds pooled (paper Table 2)\n",
        (
            "Mean ± standard error (std with ddof=1 / sqrt(seeds)), seeds in brackets; the best "
            "mean in each row is in bold.\n"
        ),
        table2_markdown(points),
        "## Win-rate against labels acquired (paper Figure 2)\n",
        "![win-rate against labels](win_rate.png)\n",
        "## Label efficiency\n",
    ]
    efficiency = label_efficiency(points, references)
    if efficiency:
        parts += [
            (
                "Labels random needs to reach each strategy's mean win-rate (linear interpolation "
                "on random's mean curve), and that over the strategy's own labels: above 1x the "
                "strategy saves labels. `<=`: at or below random's first size; `>`: random never "
                "gets there.\n"
            ),
            efficiency_markdown(efficiency),
        ]
    else:
        parts.append("No `random` runs with matching settings, so no label efficiency.\n")
    parts.append("## Implicit Bradley-Terry probability of acquired pairs (paper Figure 3)\n")
    if hists:
        files.append(plot_bt_histograms(hists, out_dir / "bt_histograms.png"))
        parts += [
            (
                "For each acquired pair with an A/B verdict: the probability the acquiring "
                "policy's implicit reward model gave the oracle's choice, pooled over seeds. Green "
                "(> 0.5): the model agreed with the oracle; red (< 0.5): it contradicted it, most "
                "confidently near 0. Exactly 0.5 is a policy still equal to its reference (the "
                "first round's cold start).\n"
            ),
            "![BT probability histograms](bt_histograms.png)\n",
            histogram_markdown(hists),
        ]
        bins = calibration(groups)
        if bins:
            parts += [
                "## Calibration of the implicit reward\n",
                (
                    "Acquired A/B pairs after the cold start, pooled over seeds and rounds, binned "
                    "by the model's confidence in its preferred completion (max(p, 1 - p) under "
                    "the Bradley-Terry model): the mean confidence against how often the oracle "
                    "chose that completion. Predicted well above agreed means the implicit reward "
                    "is overconfident, and ranking by certainty buys pairs it already gets right.\n"
                ),
                calibration_markdown(bins),
            ]
    else:
        parts.append(
            "No acquired pair carries `bt_prob` (acquisition ran with `annotate: false`).\n"
        )
    parts += [
        "## Compute beside labels\n",
        (
            "Mean per run of what acquisition and training cost (apl.loop.compute: tokens "
            "sampled for acquisition, reference and frozen-feature forward rows, preference "
            "pairs through DPO forward+backward, wall seconds), and acquisition + training "
            "seconds against the random reference. Evaluation is the same for every strategy "
            "and left out.\n"
        ),
        compute_markdown(groups, references),
    ]
    parts += ["## Oracle spend\n", spend_markdown(groups)]
    people = [(str(r.path), r.annotators) for rs in groups.values() for r in rs if r.annotators]
    if people:
        parts += [
            "## Annotators\n",
            (
                "People who labelled (`oracle.name=web`): answers, time from a pair being shown "
                "to its answer (page answers only), and agreement with the other annotators of "
                "the same pairs (skips excluded).\n"
            ),
            annotators_markdown(people),
        ]
    return "\n".join(parts), files


def _paired_section(groups: dict[str, list[RunRecord]], references: dict[str, str]) -> list[str]:
    """The default comparison: strategy minus random by seed, per metric, and its efficiency."""
    parts = ["## Each strategy against random, paired by seed\n"]
    rows_by_metric = {m: paired_differences(groups, references, m) for m in METRICS}
    if not any(rows_by_metric.values()):
        return parts + ["No strategy shares a seed with a `random` run of the same settings.\n"]
    parts.append(
        "Runs with one seed share evaluation prompts, baseline completions and sampling streams "
        "(and, for rules that are random at cold start, their first round), so the per-seed "
        "difference is the comparison; SE = std (ddof=1) of the differences / sqrt(pairs); "
        "2 SE is the smallest difference these seeds could tell from zero.\n"
    )
    for metric, rows in rows_by_metric.items():
        if rows:
            parts += [f"### {METRICS[metric]} (`{metric}`)\n", paired_markdown(rows)]
    intervals = efficiency_intervals(groups, references)
    if intervals:
        parts += [
            "### Labels random needs to match each strategy, with a bootstrap interval\n",
            (
                "Linear interpolation on random's mean win-rate curve; 95% percentile interval "
                "over 2,000 resamples of the seeds (each strategy run kept with its random run). "
                "A saving above 1x means fewer labels than random for the same win-rate.\n"
            ),
            efficiency_interval_markdown(intervals),
        ]
    return parts


def write_report(
    paths: Iterable[str | Path], output: str | Path, consistency_dir: str | Path | None = None
) -> ReportFiles:
    """Write `output/report.md` plus PNG figures and CSVs for the runs under `paths`."""
    out_dir = Path(output)
    # Checked before any run is read: a wrong path fails at once and nothing is written.
    blocker = next((p for p in (out_dir, *out_dir.absolute().parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise DataError(f"--output {out_dir}: {blocker} is a file; choose a directory.")
    if consistency_dir is not None and not (Path(consistency_dir) / "consistency.json").is_file():
        raise DataError(
            f"--consistency {consistency_dir} holds no consistency.json; pass the --output-dir "
            "of `apl judge consistency`."
        )
    groups, by = load_runs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    text, files = report_markdown(groups, by, out_dir)
    if consistency_dir is not None:
        section, copied = _consistency_section(Path(consistency_dir), out_dir)
        text += "\n" + section
        files += copied
    text += "\n## Files\n\n" + "\n".join(f"- `{f.name}`" for f in files) + "\n"
    markdown = out_dir / REPORT_FILE
    markdown.write_text(text, encoding="utf-8")
    logger.info("Wrote %s", markdown)
    return ReportFiles(markdown, files, sum(len(r) for r in groups.values()), len(groups))
