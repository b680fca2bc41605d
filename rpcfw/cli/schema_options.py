"""``--proto FILE -I DIR`` (a schema from .proto files) or server reflection: the schema the
call, list and describe commands work with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..client import Channel
from .proto_schema import compile_protos
from .reflection_schema import reflected_schema
from .schema import Schema

__all__ = ["IncludeOption", "ProtoOption", "load_schema", "proto_schema"]

ProtoOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--proto",
        help="A .proto file with the schema (repeatable); default: ask the server (reflection).",
        show_default=False,
        metavar="FILE",
    ),
]
IncludeOption = Annotated[
    list[Path] | None,
    typer.Option(
        "-I",
        "--include",
        help="Import root for --proto files (repeatable).",
        show_default=False,
        metavar="DIR",
    ),
]


def proto_schema(protos: list[Path], includes: list[Path] | None) -> Schema:
    """The schema of ``--proto`` files compiled with the bundled protoc (``-I`` dirs)."""
    return Schema.of_files(compile_protos(protos, includes or []).file)


async def load_schema(
    channel: Channel,
    protos: list[Path] | None,
    includes: list[Path] | None,
    symbols: list[str],
    seconds: float | None,
) -> Schema:
    """From ``--proto`` when given, else from the server's reflection (the files defining
    ``symbols``)."""
    if protos:
        return proto_schema(protos, includes)
    return await reflected_schema(channel, symbols, seconds)
