"""gRPC health checking across stacks: grpcio clients on rpcfw's HealthService, rpcfw's client
side (HealthStub, watch_health) on a grpcio server's health servicer.

grpcio-health-checking is not a dependency: the grpcio side is generic calls and a small
``method_handlers_generic_handler`` servicer over the generated pb2 messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw import ServingStatus, Status
from rpcfw._proto.grpc.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from rpcfw._proto.grpc.health.v1.health_rpcfw import HealthStub
from rpcfw.health import watch_health
from tests.echo_service import make_echo_service

from .wiretap import GOAWAY, WireTap

CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
ECHO = "echo.v1.Echo"
DATA = 0x0


def grpc_check(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        CHECK,
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )


def grpc_watch(channel: grpc.aio.Channel) -> Any:
    return channel.unary_stream(
        WATCH,
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )


@pytest.fixture
async def rpcfw_server(echo_pb: ModuleType) -> AsyncIterator[rpcfw.Server]:
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")])
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=1)


async def test_grpcio_client_checks_an_rpcfw_server(rpcfw_server: rpcfw.Server) -> None:
    async with grpc.aio.insecure_channel(rpcfw_server.address) as channel:
        check = grpc_check(channel)
        for service in ("", ECHO):
            response = await check(HealthCheckRequest(service=service), timeout=2)
            assert response.status == HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(HealthCheckRequest(service="no.such.Service"), timeout=2)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_grpcio_client_watches_an_rpcfw_server_until_it_stops(
    echo_pb: ModuleType, wiretap: WireTap
) -> None:
    """NOT_SERVING reaches the client on the wire before the server's first GOAWAY."""
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")])
    await server.start("127.0.0.1", 0)
    assert server.health is not None and server.port is not None
    await wiretap.start(server.port)
    async with grpc.aio.insecure_channel(wiretap.address) as channel:
        call = grpc_watch(channel)(HealthCheckRequest(service=ECHO), timeout=10)
        seen = []
        async with asyncio.timeout(5):
            seen.append((await call.read()).status)
            server.health.set_status(ECHO, ServingStatus.NOT_SERVING)
            seen.append((await call.read()).status)
            server.health.set_status(ECHO, ServingStatus.SERVING)
            seen.append((await call.read()).status)
            await server.stop(grace=2)
            seen.append((await call.read()).status)
            # EOF: the watch ended with status OK (grpcio's read() raises for any other), and
            # before the connection closed: the GOAWAY ordering is checked on the wire below
            assert await call.read() is grpc.aio.EOF
    assert seen == [
        HealthCheckResponse.SERVING,
        HealthCheckResponse.NOT_SERVING,
        HealthCheckResponse.SERVING,
        HealthCheckResponse.NOT_SERVING,
    ]
    server_frames = [f for f in wiretap.frames if f.direction == "server"]
    not_serving = b"\x00\x00\x00\x00\x02\x08\x02"  # uncompressed, 2 bytes: status=NOT_SERVING
    last_data = max(i for i, f in enumerate(server_frames) if f.type == DATA and f.payload)
    assert server_frames[last_data].payload == not_serving
    first_goaway = min(i for i, f in enumerate(server_frames) if f.type == GOAWAY)
    assert last_data < first_goaway


async def test_grpcio_client_gets_unimplemented_without_health(echo_pb: ModuleType) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")], health=False)
    await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await grpc_check(channel)(HealthCheckRequest(), timeout=2)
            assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(grace=1)


class GrpcHealth:
    """A minimal grpcio health servicer (what grpcio-health-checking does, for the tests)."""

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {"": HealthCheckResponse.SERVING}
        self.changed = asyncio.Condition()

    async def set(self, service: str, status: int) -> None:
        async with self.changed:
            self.statuses[service] = status
            self.changed.notify_all()

    async def check(self, request: HealthCheckRequest, context: Any) -> HealthCheckResponse:
        if request.service not in self.statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return HealthCheckResponse(status=self.statuses[request.service])  # type: ignore[arg-type]

    async def watch(
        self, request: HealthCheckRequest, context: Any
    ) -> AsyncIterator[HealthCheckResponse]:
        last = None
        while True:
            async with self.changed:
                status = self.statuses.get(request.service, HealthCheckResponse.SERVICE_UNKNOWN)
                if status == last:
                    await self.changed.wait()
                    continue
            last = status
            yield HealthCheckResponse(status=status)  # type: ignore[arg-type]

    def handler(self) -> grpc.GenericRpcHandler:
        options = {
            "request_deserializer": HealthCheckRequest.FromString,
            "response_serializer": HealthCheckResponse.SerializeToString,
        }
        return grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {
                "Check": grpc.unary_unary_rpc_method_handler(self.check, **options),
                "Watch": grpc.unary_stream_rpc_method_handler(self.watch, **options),
            },
        )


@pytest.fixture
async def grpcio_health() -> AsyncIterator[tuple[GrpcHealth, str]]:
    servicer = GrpcHealth()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([servicer.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


async def test_rpcfw_client_checks_and_watches_a_grpcio_server(
    grpcio_health: tuple[GrpcHealth, str],
) -> None:
    servicer, address = grpcio_health
    async with rpcfw.Channel(address) as channel:
        stub = HealthStub(channel)
        response = await stub.check(HealthCheckRequest(service=""), timeout=2)
        assert response.status == HealthCheckResponse.SERVING
        with pytest.raises(rpcfw.RpcError) as info:
            await stub.check(HealthCheckRequest(service=ECHO), timeout=2)
        assert info.value.status is Status.NOT_FOUND

        statuses = aiter(watch_health(channel, ECHO, timeout=10))
        async with asyncio.timeout(5):
            assert await anext(statuses) is ServingStatus.SERVICE_UNKNOWN
            await servicer.set(ECHO, HealthCheckResponse.SERVING)
            assert await anext(statuses) is ServingStatus.SERVING
            await servicer.set(ECHO, HealthCheckResponse.NOT_SERVING)
            assert await anext(statuses) is ServingStatus.NOT_SERVING
            await statuses.aclose()  # type: ignore[attr-defined]


async def test_watch_health_on_a_grpcio_server_without_health_yields_serving_once(
    start_server: Any,
) -> None:
    peer = await start_server("grpcio")  # an Echo server only: Health is UNIMPLEMENTED
    async with rpcfw.Channel(peer.address) as channel, asyncio.timeout(5):
        assert [s async for s in watch_health(channel, timeout=2)] == [ServingStatus.SERVING]
