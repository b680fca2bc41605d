"""``rpcfw gen``: generate message classes and rpcfw service modules from .proto files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rpcfw_codegen import Backend, GenError, generate_tree

__all__ = ["gen"]


def gen(
    protos: Annotated[
        list[Path],
        typer.Argument(
            help="The .proto files to generate from; a directory stands for every .proto below it.",
            show_default=False,
            metavar="PROTO_OR_DIR",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="Output package directory (created if missing; import it as a package).",
            show_default=False,
            metavar="OUT",
        ),
    ],
    include: Annotated[
        list[Path] | None,
        typer.Option(
            "-I",
            "--include",
            help="Import root for .proto files (repeatable). Default: each directory given.",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    messages: Annotated[
        Backend,
        typer.Option("--messages", help="Message classes: betterproto2 or protobuf (upb, faster)."),
    ] = Backend.BETTERPROTO2,
) -> None:
    """Generate message classes and rpcfw stubs/server bases into the package OUT.

    Well-known types (google/protobuf/*.proto) are always importable.
    Nothing is written to OUT unless the whole generation succeeds.
    """
    try:
        result = generate_tree(protos, out, includes=include or (), backend=messages)
    except GenError as exc:
        typer.echo(f"{exc}", err=True)
        raise typer.Exit(1) from None
    if result.warnings.strip():
        typer.echo(result.warnings.rstrip(), err=True)
    typer.echo(f"rpcfw gen: {len(result.files)} files in {out} ({messages.value} messages)")
