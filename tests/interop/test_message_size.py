"""Message size limits, each direction: messages just under 4 MiB pass, the default receive limit
is 4 MiB (a 5 MiB message is RESOURCE_EXHAUSTED), and the limit is configurable on
rpcfw.Server and rpcfw.Channel. grpcio peers raise their own send/receive limits where a test
needs them to produce or accept the big message; grpcio's own rejections are checked alongside."""

from __future__ import annotations

import asyncio
from types import ModuleType

import grpc
import pytest

import rpcfw

from .calls import grpc_call, rpcfw_call
from .conftest import ConnectGrpc, MiB, Peer, StartServer

JUST_UNDER_4_MIB = 4 * MiB - 64  # the reply adds index and server_id, still under 4 MiB
FIVE_MIB = 5 * MiB
KINDS = ("unary", "server_stream")  # a unary call and a stream


@pytest.mark.parametrize("kind", ["unary", "server_stream", "bidi"])
async def test_rpcfw_client_exchanges_messages_just_under_4_mib(
    echo_pb: ModuleType, server: Peer, kind: str
) -> None:
    payload = b"\xab" * JUST_UNDER_4_MIB
    async with asyncio.timeout(10), rpcfw.Channel(server.address) as channel:
        replies = await rpcfw_call(
            echo_pb.EchoStub(channel), kind, echo_pb.EchoRequest(payload=payload, count=1)
        )
    assert len(replies) == 1 and replies[0].payload == payload


@pytest.mark.parametrize("kind", ["unary", "server_stream", "bidi"])
async def test_grpcio_client_exchanges_messages_just_under_4_mib(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    payload = b"\xab" * JUST_UNDER_4_MIB
    client = grpc_client(server.address)
    async with asyncio.timeout(10):
        replies = await grpc_call(client, kind, echo_pb.EchoRequest(payload=payload, count=1))
    assert len(replies) == 1 and replies[0].payload == payload


@pytest.mark.parametrize("kind", ["unary", "client_stream"])
async def test_server_rejects_5_mib_request_from_grpcio_client_with_resource_exhausted(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    client = grpc_client(server.address, max_send_message_length=16 * MiB)
    async with asyncio.timeout(10):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await grpc_call(client, kind, echo_pb.EchoRequest(payload=bytes(FIVE_MIB)))
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, info.value
        assert (
            await client.unary(echo_pb.EchoRequest(message="still fine"))
        ).message == "still fine"


@pytest.mark.parametrize("kind", ["unary", "client_stream"])
async def test_server_rejects_5_mib_request_from_rpcfw_client_with_resource_exhausted(
    echo_pb: ModuleType, server: Peer, kind: str
) -> None:
    async with asyncio.timeout(10), rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        with pytest.raises(rpcfw.RpcError) as info:
            await rpcfw_call(stub, kind, echo_pb.EchoRequest(payload=bytes(FIVE_MIB)))
        assert info.value.status is rpcfw.Status.RESOURCE_EXHAUSTED, info.value
        assert (await stub.unary(echo_pb.EchoRequest(message="still fine"))).message == "still fine"


@pytest.fixture(params=["grpcio", "rpcfw"], ids=["grpcio-server", "rpcfw-server"])
async def big_server(request: pytest.FixtureRequest, start_server: StartServer) -> Peer:
    """An Echo server that accepts (and so echoes back) messages up to 16 MiB."""
    return await start_server(request.param, max_receive=16 * MiB, max_send=16 * MiB)


@pytest.mark.parametrize("kind", KINDS)
async def test_rpcfw_client_rejects_5_mib_response_with_resource_exhausted(
    echo_pb: ModuleType, big_server: Peer, kind: str
) -> None:
    async with asyncio.timeout(10), rpcfw.Channel(big_server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        with pytest.raises(rpcfw.MessageTooLargeError) as info:
            await rpcfw_call(stub, kind, echo_pb.EchoRequest(payload=bytes(FIVE_MIB), count=1))
        assert info.value.status is rpcfw.Status.RESOURCE_EXHAUSTED
        assert info.value.limit == 4 * MiB
        assert (await stub.unary(echo_pb.EchoRequest(message="still fine"))).message == "still fine"


@pytest.mark.parametrize("kind", KINDS)
async def test_grpcio_client_rejects_5_mib_response_with_resource_exhausted(
    echo_pb: ModuleType, big_server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    client = grpc_client(big_server.address)
    async with asyncio.timeout(10):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await grpc_call(client, kind, echo_pb.EchoRequest(payload=bytes(FIVE_MIB), count=1))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_rpcfw_channel_receive_limit_is_configurable_against_grpcio_server(
    echo_pb: ModuleType, start_server: StartServer
) -> None:
    peer = await start_server("grpcio", max_receive=16 * MiB)
    request = echo_pb.EchoRequest(payload=bytes(FIVE_MIB))
    async with asyncio.timeout(10):
        async with rpcfw.Channel(peer.address, max_receive_message_length=8 * MiB) as channel:
            assert len((await echo_pb.EchoStub(channel).unary(request)).payload) == FIVE_MIB
        async with rpcfw.Channel(peer.address, max_receive_message_length=1024) as channel:
            stub = echo_pb.EchoStub(channel)
            assert (await stub.unary(echo_pb.EchoRequest(payload=bytes(900)))).payload == bytes(900)
            with pytest.raises(rpcfw.MessageTooLargeError) as info:
                await stub.unary(echo_pb.EchoRequest(payload=bytes(2000)))
            assert (info.value.status, info.value.limit) == (rpcfw.Status.RESOURCE_EXHAUSTED, 1024)


async def test_rpcfw_server_receive_limit_is_configurable_against_grpcio_client(
    echo_pb: ModuleType, start_server: StartServer, grpc_client: ConnectGrpc
) -> None:
    big = grpc_client(
        (await start_server("rpcfw", max_receive=8 * MiB)).address,
        max_send_message_length=16 * MiB,
        max_receive_message_length=16 * MiB,
    )
    small = grpc_client((await start_server("rpcfw", max_receive=1024)).address)
    async with asyncio.timeout(10):
        assert (
            len((await big.unary(echo_pb.EchoRequest(payload=bytes(FIVE_MIB)))).payload) == FIVE_MIB
        )
        assert (await small.unary(echo_pb.EchoRequest(payload=bytes(900)))).payload == bytes(900)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await small.unary(echo_pb.EchoRequest(payload=bytes(2000)))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "1024" in (info.value.details() or "")
