"""The `apl` command line: thin typer commands that parse, call the library, and report.

One module per command group; each registers its commands on `app` when imported.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from apl.errors import APLError
from apl.log import setup_logging

app = typer.Typer(
    name="apl",
    help="Active preference learning: DPO fine-tuning that buys only the labels that teach most.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn an APLError into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except APLError as err:
            one_line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
            typer.echo(f"error: {one_line}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    setup_logging(verbose)


def main() -> None:
    """Console-script entry point: usage errors (bad option, missing file) are one line, exit 2."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as err:  # click's usage errors (typer vendors click)
        if type(err).__name__ == "NoArgsIsHelpError":  # `apl`, `apl judge`: help, as typer shows it
            from typer import rich_utils

            rich_utils.rich_format_error(err)  # type: ignore[arg-type]
            sys.exit(2)
        typer.echo(f"error: {usage_line(err)}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def usage_line(err: typer.TyperException) -> str:
    """A usage error as one line that points at the command's --help."""
    message = " ".join(line.strip() for line in err.format_message().splitlines() if line.strip())
    ctx = getattr(err, "ctx", None)
    if ctx is not None:
        message = f"{message.rstrip('.')}; see `{ctx.command_path} --help`."
    return message


# Register the commands (each module adds to `app`); after `app` exists, so no cycle.
from apl.cli import run, sweep, judge, label, pretrain  # noqa: E402, F401, I001  (help lists them in this order)
