"""`apl sweep` and `apl report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apl.cli import app, handle_errors


@app.command()
@handle_errors
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep YAML: base, grid, output_dir[, parallel].")],
    parallel: Annotated[
        int | None,
        typer.Option(min=1, help="Runs at once. Default: the spec's, else one per GPU / per core."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads per run. Default: cores / parallel.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="List the runs and what would be done; start nothing.")
    ] = False,
) -> None:
    """Run a grid of configs (strategies x seeds x ...) as resumable runs; complete ones are skipped."""
    from rich.console import Console
    from rich.table import Table

    from apl.sweep import load_sweep_spec, plan_sweep, run_sweep

    loaded = load_sweep_spec(spec)
    if dry_run:
        table = Table("run", "state", "action", "command", title=f"apl sweep {spec} (dry run)")
        for item in plan_sweep(loaded):
            action = {"new": "run", "incomplete": "resume", "complete": "skip"}[item.state]
            table.add_row(item.run.name, item.state, action, " ".join(item.command or []))
        Console().print(table)
        return
    result = run_sweep(loaded, parallel=parallel, threads=threads)
    table = Table("run", "action", "result", "seconds", "log", title=f"apl sweep {loaded.root}")
    for o in result.outcomes:
        status = "ok" if o.ok else f"FAILED (exit {o.returncode}): {o.detail}"
        log = str(o.log_path) if o.action != "skip" else ""
        table.add_row(o.name, o.action, status, f"{o.seconds:.0f}", log)
    Console().print(table)
    if result.failed:
        typer.echo(
            f"{len(result.failed)} of {len(result.outcomes)} runs failed; see their logs, fix, "
            f"and rerun `apl sweep {spec}` (complete runs are skipped).",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
@handle_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run dirs and/or sweep roots.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory.")] = Path(
        "report"
    ),
    consistency: Annotated[
        Path | None, typer.Option(help="An `apl judge consistency --output-dir` to include.")
    ] = None,
) -> None:
    """Write the paper's Table 2, Figures 2-3, label efficiency and spend as Markdown + PNG + CSV."""
    from apl.reports.markdown import write_report

    written = write_report(runs, output, consistency_dir=consistency)
    typer.echo(
        f"Wrote {written.markdown} ({written.num_runs} runs, {written.num_groups} strategies)"
    )
