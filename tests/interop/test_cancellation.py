"""Client cancellation, each direction: the call ends promptly, the server's handler is cancelled,
and the wire carries RST_STREAM with CANCEL (8) — grpclib's own client sent NO_ERROR (0), which
grpcio's server API cannot tell apart, so a frame-recording proxy checks the code itself.

No test measures time: the handlers' delay is far longer than any run, so a call that ends
and a handler that is cancelled prove the cancellation ended them; ``LIVENESS`` only bounds
waits so that a hang fails the test."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import grpc
import pytest
from h2.errors import ErrorCodes

import rpcfw

from ..echo_service import LIVENESS
from .calls import KINDS, PATHS, eventually, grpc_start, rpcfw_call
from .conftest import ConnectGrpc, Peer
from .wiretap import RST_STREAM, WireTap

#: a handler only a cancellation can end (its delay outlasts any test run)
SLOW = {"message": "slow", "delay_ms": 600_000, "count": 1}


def reset_codes(tap: WireTap, direction: str) -> list[int]:
    return [frame.error_code for frame in tap.sent(direction, RST_STREAM)]


async def handler_running(server: Peer) -> None:
    """Until the call's handler is in its delay (counted by the servicer)."""
    await eventually(lambda: server.servicer.delaying == 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_rpcfw_client_task_cancel_sends_rst_cancel_and_stops_the_server_handler(
    echo_pb: ModuleType, server: Peer, wiretap: WireTap, kind: str
) -> None:
    await wiretap.start(server.port)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(wiretap.address) as channel:
        request = echo_pb.EchoRequest(**SLOW)
        task = asyncio.ensure_future(rpcfw_call(echo_pb.EchoStub(channel), kind, request))
        await handler_running(server)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: server.servicer.cancelled == [PATHS[kind]])
        assert reset_codes(wiretap, "client") == [ErrorCodes.CANCEL]


async def test_rpcfw_bidi_cancel_wakes_the_reader_with_cancelled_and_stops_the_server_handler(
    echo_pb: ModuleType, server: Peer, wiretap: WireTap
) -> None:
    await wiretap.start(server.port)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(wiretap.address) as channel:
        async with echo_pb.EchoStub(channel).bidi() as stream:
            await stream.send(echo_pb.EchoRequest(**SLOW))
            reader = asyncio.ensure_future(stream.recv())
            await handler_running(server)
            assert not reader.done()  # waiting for a reply the handler will not send
            assert stream.cancel()
            with pytest.raises(rpcfw.RpcError) as info:
                await reader
            assert info.value.status is rpcfw.Status.CANCELLED
            with pytest.raises(rpcfw.RpcError):
                await stream.send(echo_pb.EchoRequest(message="after cancel"))
        await eventually(lambda: server.servicer.cancelled == [PATHS["bidi"]])
        assert reset_codes(wiretap, "client") == [ErrorCodes.CANCEL]


async def test_rpcfw_bidi_left_early_cancels_the_call_with_rst_cancel(
    echo_pb: ModuleType, server: Peer, wiretap: WireTap
) -> None:
    await wiretap.start(server.port)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(wiretap.address) as channel:
        async with echo_pb.EchoStub(channel).bidi() as stream:
            await stream.send(echo_pb.EchoRequest(**SLOW))
            await handler_running(server)
        await eventually(lambda: server.servicer.cancelled == [PATHS["bidi"]])
        assert reset_codes(wiretap, "client") == [ErrorCodes.CANCEL]


@pytest.mark.parametrize("kind", KINDS)
async def test_grpcio_client_cancel_stops_the_server_handler_promptly(
    echo_pb: ModuleType, server: Peer, wiretap: WireTap, grpc_client: ConnectGrpc, kind: str
) -> None:
    await wiretap.start(server.port)
    client = grpc_client(wiretap.address)
    async with asyncio.timeout(LIVENESS):
        call: Any = grpc_start(client, kind, echo_pb.EchoRequest(**SLOW))
        await handler_running(server)
        assert call.cancel()
        await eventually(lambda: server.servicer.cancelled == [PATHS[kind]])
        assert call.cancelled()
        assert await call.code() is grpc.StatusCode.CANCELLED
        assert reset_codes(wiretap, "client") == [ErrorCodes.CANCEL]  # grpcio does it this way too
