"""``rpcfw gen``: generate message classes and rpcfw service modules from .proto files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rpcfw_codegen import Backend, GenError, generate_tree

from .proto_schema import not_found_hint

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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Generate into a folder rpcfw gen did not make, replacing files it did not write.",
        ),
    ] = False,
) -> None:
    """Generate message classes and rpcfw stubs/server bases into the package OUT.

    Well-known types (google/protobuf/*.proto) are always importable.
    Nothing is written to OUT unless the whole generation succeeds. OUT is rpcfw gen's:
    OUT/.rpcfw-gen.json lists what it wrote, and what it wrote before and no longer
    generates is removed.
    """
    try:
        result = generate_tree(protos, out, includes=include or (), backend=messages, force=force)
    except GenError as exc:
        typer.echo(f"{exc}", err=True)
        if not_found_hint(str(exc)):
            typer.echo(
                "hint: protoc looks files and imports up below each import root: pass the "
                "folder imports are relative to with -I DIR (e.g. -I proto)",
                err=True,
            )
        raise typer.Exit(1) from None
    if result.warnings.strip():
        typer.echo(result.warnings.rstrip(), err=True)
    removed = f", {len(result.removed)} no longer generated removed" if result.removed else ""
    typer.echo(
        f"rpcfw gen: {len(result.files)} files in {out} ({messages.value} messages){removed}"
    )
