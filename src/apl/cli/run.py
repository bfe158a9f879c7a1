"""`apl run`, `apl resume`, `apl status`, `apl export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from apl.cli import app, handle_errors

# Options a resumed run may change: limits on spending and waiting, and where metrics are
# reported, never what is computed.
RESUME_OVERRIDABLE = (
    "oracle.budget_usd",
    "oracle.max_calls",
    "oracle.concurrency",
    "oracle.timeout_s",
    "oracle.max_retries",
    "oracle.backoff_base_s",
    "oracle.backoff_max_s",
    "oracle.max_retry_after_s",
    "oracle.serve",  # `web`: where and how the labelling page is served, not what it labels
    "oracle.host",
    "oracle.port",
    "oracle.undo_window_s",
    "oracle.poll_s",
    "tracking.report_to",
    "tracking.project",
    "tracking.run_name",
)


def _print_result(result: Any) -> None:
    from rich.console import Console

    from apl.reports.summary import rounds_table

    Console().print(rounds_table(result.metrics, title=f"apl run {result.run_dir}"))
    typer.echo(f"Labels: {result.run_dir}/export; model: {result.run_dir}/final_model")


def _load(overrides: list[str] | None, config: Path | None) -> Any:
    """A config from an optional leading YAML argument (or --config) plus overrides."""
    from apl.config import load_config
    from apl.errors import ConfigError

    args = list(overrides or [])
    if args and "=" not in args[0] and args[0].endswith((".yaml", ".yml")):
        if config is not None:
            raise ConfigError(f"two configs given: {config} and {args[0]}; pass one.")
        config = Path(args.pop(0))
    return load_config(config, args)


_OVERRIDES_HELP = (
    "[CONFIG.yaml] then section.option=value overrides, e.g. loop.query_size=32 seed=1."
)
_CONFIG_OPT = typer.Option("--config", "-c", help="YAML config; defaults: offline IMDB.")


@app.command("config")
@handle_errors
def show_config(
    overrides: Annotated[list[str] | None, typer.Argument(help=_OVERRIDES_HELP)] = None,
    config: Annotated[Path | None, _CONFIG_OPT] = None,
) -> None:
    """Print the resolved config (every default spelled out) after checking every option."""
    from apl.config import dump_config
    from apl.loop.checks import validate_config

    resolved = _load(overrides, config)
    validate_config(resolved)
    typer.echo(dump_config(resolved), nl=False)


@app.command()
@handle_errors
def run(
    overrides: Annotated[list[str] | None, typer.Argument(help=_OVERRIDES_HELP)] = None,
    config: Annotated[Path | None, _CONFIG_OPT] = None,
) -> None:
    """Run active preference learning (Algorithm 1); no arguments runs the offline IMDB default."""
    from apl.loop.checks import check_new_run

    resolved = _load(overrides, config)
    check_new_run(resolved)  # before torch is even imported: a bad input fails in a second
    from apl.loop.runner import run as run_loop

    _print_result(run_loop(resolved))


@app.command()
@handle_errors
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The output_dir of an interrupted `apl run`.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Only limits and trackers may change: {', '.join(RESUME_OVERRIDABLE)}."
        ),
    ] = None,
) -> None:
    """Continue a killed or stopped run; paid verdicts are reused, never bought again."""
    from apl.loop.checks import resume_config

    resume_config(run_dir, overrides or [], RESUME_OVERRIDABLE)  # fail fast, before torch loads
    from apl.loop.runner import resume_run

    _print_result(resume_run(run_dir, overrides or [], RESUME_OVERRIDABLE))


@app.command()
@handle_errors
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run's output_dir.")],
) -> None:
    """Show a run's progress, labels held, spend, latest win-rate (and who labelled, for `web`)."""
    from rich.console import Console

    from apl.reports.annotators import annotators_table
    from apl.reports.summary import rounds_table, status_table
    from apl.store.label_people import read_agreement
    from apl.store.label_queue import LabelQueue
    from apl.store.run_dir import load_run_dir

    directory = load_run_dir(run_dir)
    console = Console()
    console.print(status_table(directory.status(), str(run_dir)))
    with directory.open_ledger() as ledger:
        console.print(rounds_table(ledger.metrics()))
    people = read_agreement(directory.ledger_path)
    if people is not None:
        with LabelQueue(directory.ledger_path) as queue:
            console.print(annotators_table(people, queue.progress()))


@app.command()
@handle_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run's output_dir.")],
    out: Annotated[Path | None, typer.Option(help="Where to write; default: the run dir.")] = None,
) -> None:
    """Export a run's labelled preferences as TRL-style JSONL and a `datasets` directory."""
    from apl.export import export_run

    result = export_run(run_dir, out)
    typer.echo(f"{result.num_rows} preferences -> {result.jsonl_path} and {result.dataset_path}")
