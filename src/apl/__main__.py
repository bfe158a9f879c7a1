"""`python -m apl` runs the CLI."""

from apl.cli import main

main()
