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
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    setup_logging(verbose)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


# Register the commands (each module adds to `app`); after `app` exists, so no cycle.
from apl.cli import run, sweep, judge, label, pretrain  # noqa: E402, F401, I001  (help lists them in this order)
