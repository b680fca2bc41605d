"""``rpcfw call TARGET SERVICE/METHOD``: one call from the command line, grpcurl-like: JSON in
and out (protobuf's JSON mapping), the schema from server reflection or ``--proto``.

Exit code: 0 when the call ended OK; the gRPC status code (1-16) when it ended with an error
status; 64 for bad input found before or instead of a call (options, JSON that is not valid or
does not fit the message, unknown service or method, a .proto protoc refuses, a missing extra);
2 for a command line typer cannot parse."""

from __future__ import annotations

import asyncio
import base64
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from .._status import Status
from ..client import Channel
from ..metadata import Metadata
from .call_runner import CallOutcome, run_call
from .channel_options import (
    CacertOption,
    CertOption,
    HeaderOption,
    InsecureOption,
    KeyOption,
    ServerNameOption,
    TlsFlags,
    TlsOption,
    open_channel,
    parse_metadata,
)
from .cli_errors import CliError, fail, report
from .json_messages import any_to_json, to_json
from .reflection_schema import reflected_services
from .request_source import RequestSource
from .schema import Schema, split_method
from .schema_options import IncludeOption, ProtoOption, load_schema

__all__ = ["call", "print_metadata"]


def print_metadata(label: str, metadata: Metadata | None) -> None:
    """Each metadata entry to stderr as ``label key: value`` (binary values base64)."""
    for key, value in metadata or ():
        shown = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        typer.echo(f"{label} {key}: {shown}", err=True)


def _report(outcome: CallOutcome, verbose: bool, schema: Schema) -> None:
    if verbose:
        print_metadata("header", outcome.initial_metadata)
    print_metadata("trailer", outcome.trailing_metadata)
    if outcome.status is not Status.OK or verbose:
        typer.echo(f"status: {outcome.status.name} ({outcome.status.value})", err=True)
        if outcome.message:
            typer.echo(f"message: {outcome.message}", err=True)
    for detail in outcome.details:
        typer.echo(f"detail {detail.TypeName()}: {any_to_json(schema, detail)}", err=True)


@dataclass(frozen=True, slots=True)
class _Args:
    method: str
    protos: list[Path] | None
    includes: list[Path] | None
    data: str | None
    timeout: float | None
    headers: list[str] | None
    emit_defaults: bool
    pretty: bool


async def _call(channel: Channel, args: _Args) -> tuple[CallOutcome, Schema]:
    metadata = parse_metadata(args.headers)
    method_name, timeout, protos = args.method, args.timeout, args.protos
    service, _ = split_method(method_name)
    if not protos:  # an unknown service: say so, with what the server has
        services = await reflected_services(channel, timeout)
        if service not in services:
            fail(f"unknown service {service!r}; the server has: {', '.join(services) or '(none)'}")
    schema = await load_schema(channel, protos, args.includes, [service], timeout)
    method = schema.method(method_name)
    output = method.output_type
    indent = 2 if args.pretty else None
    emit_defaults = args.emit_defaults

    def emit(data: bytes) -> None:
        sys.stdout.write(to_json(schema, output, data, emit_defaults=emit_defaults, indent=indent))
        sys.stdout.write("\n")
        sys.stdout.flush()

    requests = RequestSource(args.data, schema, method.input_type)
    try:
        outcome = await run_call(
            channel, method, requests, emit, call_timeout=timeout, metadata=metadata
        )
        return outcome, schema
    except ValueError as exc:  # metadata the call refuses (a key with spaces, say)
        fail(str(exc))


async def _main(target: str, tls: TlsFlags, args: _Args) -> tuple[CallOutcome, Schema]:
    channel = open_channel(target, tls)
    async with channel:
        return await _call(channel, args)


def call(
    target: Annotated[
        str,
        typer.Argument(
            help="host:port, dns:///host:port, unix:/path, etcd://HOST:PORT/SERVICE, "
            "static:///h1:p1,h2:p2 (any target a Channel takes).",
            metavar="TARGET",
            show_default=False,
        ),
    ],
    method: Annotated[
        str,
        typer.Argument(
            help="SERVICE/METHOD, e.g. echo.v1.Echo/Unary.",
            metavar="SERVICE/METHOD",
            show_default=False,
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "-d",
            "--data",
            help="Request(s) as JSON; '@' reads newline-delimited JSON from stdin (one "
            "message per document, for client and bidi streaming), '@FILE' from a file. "
            "Default: {} (none for client-streaming methods).",
            metavar="JSON|@|@FILE",
            show_default=False,
        ),
    ] = None,
    header: HeaderOption = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "-t",
            "--timeout",
            help="Deadline of the call in seconds.",
            metavar="SECONDS",
            show_default=False,
            min=0.0,
        ),
    ] = None,
    proto: ProtoOption = None,
    include: IncludeOption = None,
    emit_defaults: Annotated[
        bool, typer.Option("--emit-defaults", help="Print fields that hold their default value.")
    ] = False,
    pretty: Annotated[
        bool, typer.Option("--pretty", help="Indent each JSON response (default: one line).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("-v", "--verbose", help="Also print response headers and the OK status."),
    ] = False,
    tls: TlsOption = False,
    cacert: CacertOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    insecure: InsecureOption = False,
    server_name: ServerNameOption = None,
) -> None:
    """Call METHOD on TARGET with JSON request(s); print each response as one JSON document.

    The schema comes from the server's reflection service, or from --proto. Status, message and
    trailers go to stderr. Exit code: 0 OK, else the gRPC status code (1-16), or 64 for bad
    input (options, JSON, unknown method, proto problems).
    """
    flags = TlsFlags(tls, cacert, cert, key, insecure, server_name)
    args = _Args(method, proto, include, data, timeout, header, emit_defaults, pretty)
    try:
        outcome, schema = asyncio.run(_main(target, flags, args))
    except CliError as exc:
        report("call", exc)
    except KeyboardInterrupt:  # the call was cancelled (RST_STREAM) on the way out
        typer.echo("rpcfw call: interrupted", err=True)
        raise typer.Exit(130) from None
    _report(outcome, verbose, schema)
    raise typer.Exit(outcome.status.value)
