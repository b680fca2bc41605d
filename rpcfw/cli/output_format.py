"""``--format plain|table`` of the listing commands (``rpcfw list``, ``rpcfw registry ls``):
a rich table for a person at a terminal, the plain lines scripts read everywhere else."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import typer

__all__ = ["FormatOption", "OutputFormat", "print_table", "wants_table"]

# wide enough that a table written to a file or pipe is never folded at 80 columns
_FILE_WIDTH = 10_000


class OutputFormat(StrEnum):
    """How a listing is printed: ``plain`` lines or a rich ``table``."""

    PLAIN = "plain"
    TABLE = "table"


FormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        help="plain (for scripts) or table; default: table when stdout is a terminal, else plain.",
        show_default=False,
        case_sensitive=False,
    ),
]


def wants_table(fmt: OutputFormat | None) -> bool:
    """Whether to print a table: as ``--format`` says, else when stdout is a terminal."""
    if fmt is None:
        return sys.stdout.isatty()
    return fmt is OutputFormat.TABLE


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """Print ``rows`` under ``headers`` as a rich table on stdout (colours only on a terminal,
    never folded when stdout is a file or pipe)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=_FILE_WIDTH)
    console.print(table)
