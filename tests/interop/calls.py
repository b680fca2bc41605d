"""One helper per client to run any call kind with one request, so tests parametrize over kinds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .grpc_peer import BIDI, CLIENT_STREAM, SERVER_STREAM, UNARY, GrpcEchoClient

__all__ = ["KINDS", "PATHS", "eventually", "grpc_call", "grpc_start", "rpcfw_call"]

KINDS = ("unary", "server_stream", "client_stream", "bidi")
PATHS = dict(zip(KINDS, (UNARY, SERVER_STREAM, CLIENT_STREAM, BIDI), strict=True))


async def rpcfw_call(stub: Any, kind: str, request: Any, **options: Any) -> list[Any]:
    """Run one rpcfw call of ``kind`` that carries ``request`` once; return the replies."""
    if kind == "unary":
        return [await stub.unary(request, **options)]
    if kind == "server_stream":
        return [r async for r in stub.server_stream(request, **options)]
    if kind == "client_stream":
        return [await stub.client_stream([request], **options)]
    return [r async for r in stub.bidi([request], **options)]


def grpc_start(client: GrpcEchoClient, kind: str, request: Any, **kwargs: Any) -> Any:
    """Start one grpcio call of ``kind`` carrying ``request`` once; returns the call object."""
    if kind == "unary":
        return client.unary(request, **kwargs)
    if kind == "server_stream":
        return client.server_stream(request, **kwargs)
    if kind == "client_stream":
        return client.client_stream(iter([request]), **kwargs)
    return client.bidi(iter([request]), **kwargs)


async def grpc_call(client: GrpcEchoClient, kind: str, request: Any, **kwargs: Any) -> list[Any]:
    """Run one grpcio call of ``kind``; return the replies (raises grpc.aio.AioRpcError)."""
    call = grpc_start(client, kind, request, **kwargs)
    if kind in ("unary", "client_stream"):
        return [await call]
    return [r async for r in call]


async def eventually(predicate: Callable[[], bool], within: float = 1.0) -> float:
    """Wait until ``predicate()`` holds; fail after ``within`` seconds. Returns the wait."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start
