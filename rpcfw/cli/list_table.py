"""The rows ``rpcfw list`` shows: services with their number of methods, and a service's
methods with their kind and message types. The first column of each row is the line the
plain format prints."""

from __future__ import annotations

from google.protobuf import descriptor

from ..client import Channel
from .cli_errors import CliError
from .reflection_schema import reflected_schema
from .schema import Schema

__all__ = [
    "METHOD_HEADERS",
    "SERVICE_HEADERS",
    "method_kind",
    "method_rows",
    "reflected_method_counts",
    "schema_method_counts",
    "service_rows",
]

SERVICE_HEADERS = ("Service", "Methods")
METHOD_HEADERS = ("Method", "Kind", "Request", "Response")


def method_kind(method: descriptor.MethodDescriptor) -> str:
    """``unary``, ``server streaming``, ``client streaming`` or ``bidi``."""
    client, server = method.client_streaming, method.server_streaming
    if client and server:
        return "bidi"
    if client:
        return "client streaming"
    if server:
        return "server streaming"
    return "unary"


def method_rows(service: descriptor.ServiceDescriptor) -> list[tuple[str, str, str, str]]:
    """One row per method of ``service``: ``SERVICE/METHOD``, kind, request and response type."""
    return [
        (
            f"{service.full_name}/{method.name}",
            method_kind(method),
            method.input_type.full_name,
            method.output_type.full_name,
        )
        for method in service.methods
    ]


def service_rows(counts: dict[str, int | None]) -> list[tuple[str, str]]:
    """One row per service: its name and number of methods (``?`` when it is unknown)."""
    return [(name, "?" if count is None else str(count)) for name, count in counts.items()]


def schema_method_counts(schema: Schema) -> dict[str, int | None]:
    """The number of methods of each service of a ``--proto`` schema."""
    return {name: len(schema.service(name).methods) for name in schema.services}


async def reflected_method_counts(
    channel: Channel, services: list[str], seconds: float | None
) -> dict[str, int | None]:
    """The number of methods of each of ``services``, asked from the server's reflection; None
    for a service whose definition it does not give."""
    counts: dict[str, int | None] = {}
    for name in services:
        try:
            schema = await reflected_schema(channel, [name], seconds)
            counts[name] = len(schema.service(name).methods)
        except CliError:
            counts[name] = None
    return counts
