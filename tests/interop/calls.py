"""One helper per client to run any call kind with one request, so tests parametrize over kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..echo_service import LIVENESS, wait_until
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


async def eventually(predicate: Callable[[], bool], within: float = LIVENESS) -> None:
    """Wait until ``predicate()`` holds, yielding to the event loop between checks. ``within``
    is a liveness bound (a condition that never comes fails the test), not a timing assertion."""
    await wait_until(predicate, within)
