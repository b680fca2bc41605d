"""``rpcfw bench`` without --proto or --module: the method's request and response types from
the server's reflection service, as dynamic protobuf message classes."""

from __future__ import annotations

import asyncio
from typing import Any

from .._method import MethodSpec
from .channel_options import TlsFlags, open_channel
from .cli_errors import fail
from .raw_method import method_spec
from .reflection_schema import reflected_schema, reflected_services
from .schema import Schema, split_method

__all__ = ["reflected_method"]


async def _reflect(target: str, tls: TlsFlags, method: str, seconds: float) -> MethodSpec[Any, Any]:
    service, _ = split_method(method)
    async with open_channel(target, tls) as channel:
        services = await reflected_services(channel, seconds)
        if service not in services:
            fail(f"unknown service {service!r}; services: {', '.join(services) or '(none)'}")
        schema = await reflected_schema(channel, [service], seconds)
    found = schema.method(method)
    return method_spec(
        found, Schema.message_class(found.input_type), Schema.message_class(found.output_type)
    )


def reflected_method(
    target: str, tls: TlsFlags, method: str, seconds: float
) -> MethodSpec[Any, Any]:
    """The spec of ``method`` as the server describes it (raises CliError)."""
    return asyncio.run(_reflect(target, tls, method, seconds))
