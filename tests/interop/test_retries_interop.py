"""rpcfw retries against a grpcio server that fails the first attempts (UNAVAILABLE, and a
pushback trailer), counting the attempts and their ``grpc-previous-rpc-attempts`` server-side."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw import Status

from .grpc_peer import GrpcEcho

CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "echo.v1.Echo", "method": "Unary"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.001s",
                "maxBackoff": "0.001s",
                "backoffMultiplier": 1,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


class FailingFirst(GrpcEcho):
    """grpcio Echo whose Unary fails its first ``failures`` attempts with UNAVAILABLE (with
    ``pushback`` as ``grpc-retry-pushback-ms`` when set)."""

    def __init__(self, mod: ModuleType, failures: int, pushback: str | None = None) -> None:
        super().__init__(mod)
        self.failures = failures
        self.pushback = pushback
        self.previous: list[str | None] = []

    async def unary(self, request: Any, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        self.previous.append(metadata.get("grpc-previous-rpc-attempts"))
        if len(self.previous) <= self.failures:
            if self.pushback is not None:
                context.set_trailing_metadata([("grpc-retry-pushback-ms", self.pushback)])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return await super().unary(request, context)


@pytest.fixture
async def start_grpcio(echo_pb: ModuleType) -> AsyncIterator[Any]:
    servers: list[Any] = []

    async def start(servicer: FailingFirst) -> str:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([servicer.handler()])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(0)


async def test_retries_against_grpcio_server_failing_first_attempts(
    echo_pb: ModuleType, start_grpcio: Any
) -> None:
    servicer = FailingFirst(echo_pb, failures=2)
    address = await start_grpcio(servicer)
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    async with rpcfw.Channel(address, service_config=CONFIG) as channel:
        reply = await channel.unary_unary(spec, echo_pb.EchoRequest(message="hi"), timeout=10)
    assert reply.message == "hi" and reply.server_id == "grpcio"
    assert servicer.previous == [None, "1", "2"]


async def test_grpcio_negative_pushback_stops_retries(
    echo_pb: ModuleType, start_grpcio: Any
) -> None:
    servicer = FailingFirst(echo_pb, failures=2, pushback="-1")
    address = await start_grpcio(servicer)
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    async with rpcfw.Channel(address, service_config=CONFIG) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(spec, echo_pb.EchoRequest(), timeout=10)
    assert info.value.status is Status.UNAVAILABLE and servicer.previous == [None]
