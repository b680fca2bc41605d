"""The schema from the server itself (gRPC server reflection, ``rpcfw.reflection``), for
commands run without ``--proto``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from google.protobuf import descriptor_pb2

from .._status import Status
from ..client import Channel
from ..errors import RpcError
from .cli_errors import fail, one_line
from .schema import Schema

if TYPE_CHECKING:
    from ..reflection import ReflectionClient

__all__ = ["reflected_schema", "reflected_services"]

T = TypeVar("T")

_HINT = "give the schema with --proto FILE -I DIR instead"


def _client(channel: Channel) -> ReflectionClient:
    from ..reflection import ReflectionClient

    return ReflectionClient(channel)


def _explain(exc: RpcError, target: str) -> NoReturn:
    if exc.status is Status.UNIMPLEMENTED:
        fail(f"{target} does not serve server reflection; {_HINT}", exc.status.value)
    if exc.status is Status.NOT_FOUND:
        fail(f"server reflection at {target}: {one_line(exc.message or exc)}")
    fail(f"server reflection at {target}: {one_line(exc)}", exc.status.value)


async def _ask(what: Awaitable[T], seconds: float | None, target: str) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await what
    except TimeoutError:
        fail(f"server reflection at {target} did not answer within {seconds:g} s", 4)
    except RpcError as exc:
        _explain(exc, target)


async def reflected_services(channel: Channel, seconds: float | None) -> list[str]:
    """The services the server offers, as its reflection service lists them."""
    names: list[str] = await _ask(_client(channel).list_services(), seconds, channel.target)
    return sorted(names)


async def _files_of(
    client: ReflectionClient, symbol: str, seconds: float | None, target: str
) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files defining ``symbol``; a field (or a method written with a dot) is looked up by
    its parent when the server does not know the name itself."""
    name = symbol
    while True:
        try:
            async with asyncio.timeout(seconds):
                found = await client.file_containing_symbol(name)
                return found
        except TimeoutError:
            fail(f"server reflection at {target} did not answer within {seconds:g} s", 4)
        except RpcError as exc:
            if exc.status is not Status.NOT_FOUND:
                _explain(exc, target)
            if "." not in name:
                fail(f"symbol {symbol!r} not found on {target} (rpcfw list shows its services)")
        name = name.rpartition(".")[0]


async def reflected_schema(channel: Channel, symbols: list[str], seconds: float | None) -> Schema:
    """A schema with the files defining ``symbols`` (and what they import) and the services
    the server lists."""
    client = _client(channel)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for symbol in symbols:
        for file in await _files_of(client, symbol, seconds, channel.target):
            files.setdefault(file.name, file)
    services: list[str] = await _ask(client.list_services(), seconds, channel.target)
    schema = Schema.of_files(files.values())
    schema.services = sorted(set(services))
    return schema
