"""`apl label serve | add-annotator | export | import`: people labelling a `web` run's queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apl.cli import app, handle_errors

label_app = typer.Typer(
    help="People as the oracle: serve the labelling page, issue links, Label Studio / Argilla.",
    no_args_is_help=True,
)
app.add_typer(label_app, name="label")

_RUN_ARG = typer.Argument(help="The output_dir of a run with oracle.name=web.")


@label_app.command("serve")
@handle_errors
def serve(
    run_dir: Annotated[Path, _RUN_ARG],
    host: Annotated[
        str | None, typer.Option(help="Address to listen on. Default: oracle.host (127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port. Default: oracle.port (8765).")] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(help="Extra scheme://host[:port] a reverse proxy serves the page at."),
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark the sign-in cookie Secure (the page is behind https).")
    ] = False,
) -> None:
    """Serve the labelling page of a run until interrupted (answers go straight to its ledger)."""
    from apl.labelling.app import create_app
    from apl.labelling.server import serve as serve_app
    from apl.loop.web_labelling import labelling_setup
    from apl.store.label_queue import LabelQueue
    from apl.store.run_dir import load_run_dir

    setup = labelling_setup(load_run_dir(run_dir))
    with LabelQueue(setup.run_path / "ledger.sqlite") as queue:
        page = setup.page(tuple(allowed_origin or ()), secure_cookies)
        host, port = host or setup.host, port or setup.port
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"Serving the labelling page of {run_dir} at http://{shown}:{port}", err=True)
        if not queue.annotators():
            typer.echo(f"No annotators yet: `apl label add-annotator {run_dir} NAME`.", err=True)
        serve_app(create_app(queue, page), host, port)


@label_app.command("add-annotator")
@handle_errors
def add_annotator(
    run_dir: Annotated[Path, _RUN_ARG],
    name: Annotated[str, typer.Argument(help="The person's name (letters, digits, . _ - @).")],
    base_url: Annotated[
        str | None,
        typer.Option(help="The page's address as people reach it. Default: oracle host:port."),
    ] = None,
) -> None:
    """Print a personal sign-in link (adding NAME again replaces its link; the old one stops)."""
    from apl.loop.web_labelling import labelling_setup
    from apl.store.label_queue import LabelQueue
    from apl.store.run_dir import load_run_dir

    setup = labelling_setup(load_run_dir(run_dir))
    with LabelQueue(setup.run_path / "ledger.sqlite") as queue:
        token = queue.add_annotator(name)
    typer.echo(f"{(base_url or setup.url).rstrip('/')}/a/{token}")


@label_app.command("export")
@handle_errors
def export(
    run_dir: Annotated[Path, _RUN_ARG],
    format: Annotated[str, typer.Option("--format", "-f", help="label-studio or argilla.")],
    out: Annotated[
        Path | None, typer.Option(help="Directory to write. Default: RUN_DIR/label-<format>.")
    ] = None,
) -> None:
    """Write the pairs waiting for answers in Label Studio's or Argilla's import format."""
    from apl.errors import ConfigError
    from apl.labelling.exchange import FORMATS, export_open_pairs
    from apl.loop.web_labelling import labelling_setup
    from apl.store.label_queue import LabelQueue
    from apl.store.run_dir import load_run_dir

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is unknown; use one of {', '.join(FORMATS)}.")
    setup = labelling_setup(load_run_dir(run_dir))
    target = out or setup.run_path / f"label-{format}"
    with LabelQueue(setup.run_path / "ledger.sqlite") as queue:
        result = export_open_pairs(
            queue,
            format,
            target,
            setup.instruction,
            setup.annotators_per_pair,
            name=f"apl-{setup.run_path.name}",
        )
    typer.echo(f"{result.pairs} open pairs -> {', '.join(str(f) for f in result.files)}")


@label_app.command("import")
@handle_errors
def import_(
    run_dir: Annotated[Path, _RUN_ARG],
    file: Annotated[
        Path, typer.Argument(help="Label Studio JSON export, or Argilla records.json / directory.")
    ],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Default: recognised from the file.")
    ] = None,
) -> None:
    """Read a tool's export back as answers: all or nothing; importing twice changes nothing."""
    from apl.errors import ConfigError
    from apl.labelling.exchange import FORMATS, import_answers_file
    from apl.loop.web_labelling import labelling_setup
    from apl.store.label_queue import LabelQueue
    from apl.store.run_dir import load_run_dir

    if format is not None and format not in FORMATS:
        raise ConfigError(f"--format {format!r} is unknown; use one of {', '.join(FORMATS)}.")
    setup = labelling_setup(load_run_dir(run_dir))
    with LabelQueue(setup.run_path / "ledger.sqlite") as queue:
        summary = import_answers_file(queue, file, format)
    typer.echo(
        f"Imported {summary.added} answers for {summary.pairs} pairs ({summary.unchanged} already "
        f"stored); `apl resume {run_dir}` uses them."
    )
