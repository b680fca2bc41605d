"""Deadlines across the wire: expiry is status DEADLINE_EXCEEDED on both sides and stops the
handler; the server sees the client's timeout (grpc-timeout) as its time remaining.

No test measures time: a handler's delay outlasts any run, so a call that ends with
DEADLINE_EXCEEDED and a handler that is cancelled prove the deadline ended them; ``LIVENESS``
only bounds waits so that a hang fails the test."""

from __future__ import annotations

import asyncio
from types import ModuleType

import grpc
import pytest

import rpcfw

from ..echo_service import LIVENESS
from .calls import KINDS, PATHS, eventually, grpc_call, rpcfw_call
from .conftest import ConnectGrpc, Peer


@pytest.mark.parametrize("kind", KINDS)
async def test_rpcfw_client_deadline_expiry_is_deadline_exceeded_on_both_sides(
    echo_pb: ModuleType, server: Peer, kind: str
) -> None:
    request = echo_pb.EchoRequest(message="slow", delay_ms=600_000, count=1)  # only a deadline
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        with pytest.raises(rpcfw.RpcError) as info:  # not asyncio.TimeoutError
            await rpcfw_call(echo_pb.EchoStub(channel), kind, request, timeout=0.2)
        assert info.value.status is rpcfw.Status.DEADLINE_EXCEEDED
        await eventually(lambda: server.servicer.cancelled == [PATHS[kind]])


@pytest.mark.parametrize("kind", KINDS)
async def test_grpcio_client_deadline_expiry_is_deadline_exceeded_on_both_sides(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    client = grpc_client(server.address)
    request = echo_pb.EchoRequest(message="slow", delay_ms=600_000, count=1)  # only a deadline
    async with asyncio.timeout(LIVENESS):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await grpc_call(client, kind, request, timeout=0.2)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: server.servicer.cancelled == [PATHS[kind]])


async def test_rpcfw_client_timeout_reaches_the_server_as_time_remaining(
    echo_pb: ModuleType, server: Peer
) -> None:
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        with_deadline = await stub.unary(echo_pb.EchoRequest(message="deadline"), timeout=1000)
        without = await stub.unary(echo_pb.EchoRequest(message="deadline"))
    # an unusual 1000 s (no default passes), within 10 %: grpc encodes a timeout this long in
    # a coarser unit (seen: 1010 s, rounded up), and the margin below is a liveness bound
    assert 900.0 < float(with_deadline.message) <= 1100.0
    assert without.message == "None"


async def test_grpcio_client_timeout_reaches_the_server_as_time_remaining(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    client = grpc_client(server.address)
    async with asyncio.timeout(LIVENESS):
        with_deadline = await client.unary(echo_pb.EchoRequest(message="deadline"), timeout=1000)
        without = await client.unary(echo_pb.EchoRequest(message="deadline"))
    # an unusual 1000 s (no default passes), within 10 %: grpc encodes a timeout this long in
    # a coarser unit (seen: 1010 s, rounded up), and the margin below is a liveness bound
    assert 900.0 < float(with_deadline.message) <= 1100.0
    assert without.message == "None"


@pytest.mark.parametrize("kind", KINDS)
async def test_server_alone_enforces_grpc_timeout_with_deadline_exceeded(
    echo_pb: ModuleType, server: Peer, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a client that sends grpc-timeout but never times out itself (its deadline timer is
    disabled). The server must end the call with DEADLINE_EXCEEDED and stop the handler."""
    from rpcfw.client import _call
    from rpcfw.client import _opening as opening_module

    def without_local_deadline(conn, spec, headers, deadline, *args):  # type: ignore[no-untyped-def]
        return _call.ClientCall(conn, spec, headers, None, *args)

    monkeypatch.setattr(opening_module, "ClientCall", without_local_deadline)
    request = echo_pb.EchoRequest(message="slow", delay_ms=600_000, count=1)  # only a deadline
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await rpcfw_call(echo_pb.EchoStub(channel), kind, request, timeout=0.2)
        assert info.value.status is rpcfw.Status.DEADLINE_EXCEEDED, info.value
        await eventually(lambda: server.servicer.cancelled == [PATHS[kind]])
