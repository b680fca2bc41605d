"""``rpcfw list TARGET [SERVICE]`` and ``rpcfw describe TARGET SYMBOL``: what a server offers,
from its reflection service or from ``--proto`` files (exit 64 for an unknown name; the
status code when reflection fails, e.g. 12 UNIMPLEMENTED without reflection)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeVar

import typer

from ..client import Channel
from .channel_options import (
    CacertOption,
    CertOption,
    InsecureOption,
    KeyOption,
    ServerNameOption,
    TlsFlags,
    TlsOption,
    open_channel,
)
from .cli_errors import CliError, report
from .describe_text import describe as describe_symbol
from .list_table import (
    METHOD_HEADERS,
    SERVICE_HEADERS,
    method_rows,
    reflected_method_counts,
    schema_method_counts,
    service_rows,
)
from .output_format import FormatOption, print_table, wants_table
from .reflection_schema import reflected_services
from .schema_options import IncludeOption, ProtoOption, load_schema, proto_schema

__all__ = ["describe", "list_services"]

T = TypeVar("T")

TargetArgument = Annotated[
    str,
    typer.Argument(
        help="host:port, dns:///host:port, unix:/path, etcd://... (any target a Channel "
        "takes; not dialed with --proto).",
        metavar="TARGET",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "-t",
        "--timeout",
        help="Deadline of each reflection call in seconds.",
        metavar="SECONDS",
        show_default=False,
    ),
]


def _run(command: str, target: str, flags: TlsFlags, work: Callable[[Channel], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_channel(target, flags) as channel:
            return await work(channel)

    try:
        return asyncio.run(main())
    except CliError as exc:
        report(command, exc)
    except KeyboardInterrupt:
        typer.echo(f"rpcfw {command}: interrupted", err=True)
        raise typer.Exit(130) from None


def list_services(
    target: TargetArgument,
    service: Annotated[
        str | None,
        typer.Argument(help="List this service's methods instead.", metavar="SERVICE"),
    ] = None,
    proto: ProtoOption = None,
    include: IncludeOption = None,
    timeout: TimeoutOption = None,
    tls: TlsOption = False,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    insecure: InsecureOption = False,
    server_name: ServerNameOption = None,
    fmt: FormatOption = None,
) -> None:
    """List the services of TARGET, one per line, or the methods of SERVICE as
    SERVICE/METHOD (the form rpcfw call takes); on a terminal (or with --format table) as a
    table with each service's number of methods, or each method's kind and message types."""
    flags = TlsFlags(tls, cacert, cert, key, insecure, server_name)
    table = wants_table(fmt)

    async def work(channel: Channel) -> Sequence[Sequence[str]]:
        if service is None:
            if proto:
                schema = proto_schema(proto, include)
                if table:
                    return service_rows(schema_method_counts(schema))
                return [(name,) for name in schema.services]
            names = await reflected_services(channel, timeout)
            if table:
                return service_rows(await reflected_method_counts(channel, names, timeout))
            return [(name,) for name in names]
        schema = await load_schema(channel, proto, include, [service], timeout)
        return method_rows(schema.service(service))

    rows = _run("list", target, flags, work)
    if table:
        print_table(SERVICE_HEADERS if service is None else METHOD_HEADERS, rows)
        return
    for row in rows:
        typer.echo(row[0])


def describe(
    target: TargetArgument,
    symbol: Annotated[
        str,
        typer.Argument(
            help="A service, method (SERVICE/METHOD or SERVICE.METHOD), message, enum or "
            "field, by its full name.",
            metavar="SYMBOL",
            show_default=False,
        ),
    ],
    proto: ProtoOption = None,
    include: IncludeOption = None,
    timeout: TimeoutOption = None,
    tls: TlsOption = False,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    insecure: InsecureOption = False,
    server_name: ServerNameOption = None,
) -> None:
    """Print the definition of SYMBOL as .proto-like text."""
    flags = TlsFlags(tls, cacert, cert, key, insecure, server_name)
    name = symbol.strip().lstrip(".").replace("/", ".")

    async def work(channel: Channel) -> str:
        schema = await load_schema(channel, proto, include, [name], timeout)
        return describe_symbol(schema.symbol(name))

    typer.echo(_run("describe", target, flags, work))
