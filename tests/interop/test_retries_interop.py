"""rpcfw retries against a grpcio server that fails the first attempts (UNAVAILABLE, and a
pushback trailer), counting the attempts and their ``grpc-previous-rpc-attempts`` server-side;
unary calls and streaming calls (a client stream whose requests are replayed); and a hedged
client stream whose first attempt never answers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import wait_until

from .grpc_peer import GrpcEcho

CONFIG = {
    "methodConfig": [
        {
            "name": [
                {"service": "echo.v1.Echo", "method": "Unary"},
                {"service": "echo.v1.Echo", "method": "ServerStream"},
                {"service": "echo.v1.Echo", "method": "ClientStream"},
            ],
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


PREVIOUS = "grpc-previous-rpc-attempts"
HEDGING = {
    "methodConfig": [
        {
            "name": [{"service": "echo.v1.Echo", "method": "ClientStream"}],
            "hedgingPolicy": {
                "maxAttempts": 2,
                "hedgingDelay": "0.05s",
                "nonFatalStatusCodes": ["UNAVAILABLE"],
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
        self.received: list[list[str]] = []  # client streams: the requests of each attempt

    async def unary(self, request: Any, context: Any) -> Any:
        metadata = dict(context.invocation_metadata())
        self.previous.append(metadata.get("grpc-previous-rpc-attempts"))
        if len(self.previous) <= self.failures:
            if self.pushback is not None:
                context.set_trailing_metadata([("grpc-retry-pushback-ms", self.pushback)])
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return await super().unary(request, context)

    async def server_stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await self._fail_first(context)
        async for reply in super().server_stream(request, context):
            yield reply

    async def client_stream(self, requests: AsyncIterator[Any], context: Any) -> Any:
        seen = [request.message async for request in requests]
        self.received.append(seen)
        await self._fail_first(context)

        async def again() -> AsyncIterator[Any]:
            for message in seen:
                yield self._mod.EchoRequest(message=message)

        return await super().client_stream(again(), context)

    async def _fail_first(self, context: Any) -> None:
        """The unary hook for the streaming methods: fail before sending any message."""
        metadata = dict(context.invocation_metadata())
        self.previous.append(metadata.get("grpc-previous-rpc-attempts"))
        if len(self.previous) <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")


class FirstSilent(GrpcEcho):
    """grpcio Echo whose ClientStream records each attempt's requests; the first attempt reads
    them all and never answers (until cancelled: recorded in ``cancelled_attempts``)."""

    def __init__(self, mod: ModuleType) -> None:
        super().__init__(mod)
        self.previous: list[str | None] = []
        self.received: list[list[str]] = []
        self.cancelled_attempts: list[int] = []

    async def client_stream(self, requests: AsyncIterator[Any], context: Any) -> Any:
        self.previous.append(dict(context.invocation_metadata()).get(PREVIOUS))
        number, seen = len(self.previous), []
        self.received.append(seen)
        async for request in requests:
            seen.append(request.message)
        if number == 1:
            try:
                await asyncio.sleep(30)  # the attempt that never answers: until cancelled
            except asyncio.CancelledError:
                self.cancelled_attempts.append(number)
                raise
        return self._mod.EchoResponse(message=",".join(seen), index=number, server_id="grpcio")


@pytest.fixture
async def start_grpcio(echo_pb: ModuleType) -> AsyncIterator[Any]:
    servers: list[Any] = []

    async def start(servicer: GrpcEcho) -> str:
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


async def test_server_stream_retried_against_grpcio_server_failing_first_attempts(
    echo_pb: ModuleType, start_grpcio: Any
) -> None:
    """Fault: grpcio fails the first two attempts UNAVAILABLE before any message."""
    servicer = FailingFirst(echo_pb, failures=2)
    address = await start_grpcio(servicer)
    spec = dataclasses.replace(echo_pb.ECHO_SERVER_STREAM, idempotent=True)
    async with rpcfw.Channel(address, service_config=CONFIG) as channel:
        request = echo_pb.EchoRequest(message="s", count=3)
        replies = [r async for r in channel.unary_stream(spec, request, timeout=10)]
    assert [(r.index, r.server_id) for r in replies] == [
        (0, "grpcio"),
        (1, "grpcio"),
        (2, "grpcio"),
    ]
    assert servicer.previous == [None, "1", "2"]


async def test_client_stream_replayed_to_grpcio_server_after_a_failed_attempt(
    echo_pb: ModuleType, start_grpcio: Any
) -> None:
    """Fault: grpcio reads every request of the first attempt, then fails it UNAVAILABLE; the
    second attempt gets the same requests again, in order."""
    servicer = FailingFirst(echo_pb, failures=1)
    address = await start_grpcio(servicer)
    spec = dataclasses.replace(echo_pb.ECHO_CLIENT_STREAM, idempotent=True)
    messages = [echo_pb.EchoRequest(message=m) for m in ("a", "b", "c")]
    async with rpcfw.Channel(address, service_config=CONFIG) as channel:
        reply = await channel.stream_unary(spec, messages, timeout=10)
    assert reply.message == "a,b,c" and reply.index == 3
    assert servicer.received == [["a", "b", "c"], ["a", "b", "c"]]
    assert servicer.previous == [None, "1"]


async def test_client_stream_hedged_against_grpcio_server(
    echo_pb: ModuleType, start_grpcio: Any
) -> None:
    """Fault: grpcio's first attempt reads every request and never answers. The hedge (50 ms
    later) gets the message sent before it started and the one sent after, answers, and the
    first attempt is cancelled (grpcio cancels its handler)."""
    servicer = FirstSilent(echo_pb)
    address = await start_grpcio(servicer)
    spec = dataclasses.replace(echo_pb.ECHO_CLIENT_STREAM, idempotent=True)
    channel = rpcfw.Channel(address, service_config=HEDGING)
    async with channel, channel.client_stream_call(spec, timeout=10) as call:
        await call.send(echo_pb.EchoRequest(message="a"))
        await wait_until(lambda: servicer.received == [["a"], ["a"]])
        await call.send(echo_pb.EchoRequest(message="b"))
        await wait_until(lambda: servicer.received == [["a", "b"]] * 2)
        reply = await call.response()
        await wait_until(lambda: servicer.cancelled_attempts == [1])
    assert reply.message == "a,b" and reply.index == 2 and reply.server_id == "grpcio"
    assert servicer.previous == [None, "1"] and call.status is Status.OK
