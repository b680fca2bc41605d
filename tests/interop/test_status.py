"""Status codes and messages (non-ASCII, non-BMP, whitespace, '%') across the wire, each direction.

Every test runs against a grpcio server and an rpcfw server: the grpcio run is the reference.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import grpc
import pytest

import rpcfw

from .calls import KINDS, grpc_call, rpcfw_call
from .conftest import ConnectGrpc, Peer

MESSAGES = [
    "ünï cødé 🎉  two spaces",
    "  leading and trailing whitespace\t ",
    "non-BMP 𝄞𐍈😀 and 100% literal percent %41",
    "line one\nline two",
]
ERROR_CODES = [s for s in rpcfw.Status if s is not rpcfw.Status.OK]


@pytest.mark.parametrize("kind", KINDS)
async def test_rpcfw_client_receives_status_code_and_unicode_messages(
    echo_pb: ModuleType, server: Peer, kind: str
) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        for text in MESSAGES:
            request = echo_pb.EchoRequest(message=f"abort:3:{text}", count=1)
            with pytest.raises(rpcfw.RpcError) as info:
                await rpcfw_call(stub, kind, request)
            assert (info.value.status, info.value.message) == (rpcfw.Status.INVALID_ARGUMENT, text)


async def test_rpcfw_client_receives_every_error_code(echo_pb: ModuleType, server: Peer) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        for status in ERROR_CODES:
            with pytest.raises(rpcfw.RpcError) as info:
                await stub.unary(echo_pb.EchoRequest(message=f"abort:{status.value}:{status.name}"))
            assert (info.value.status, info.value.message) == (status, status.name)


async def test_rpcfw_client_sees_handler_exception_as_unknown(
    echo_pb: ModuleType, server: Peer
) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(server.address) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="raise"))
    assert info.value.status is rpcfw.Status.UNKNOWN
    assert "boom" in (info.value.message or "")


@pytest.mark.parametrize("kind", KINDS)
async def test_grpcio_client_receives_status_code_and_unicode_messages(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    client = grpc_client(server.address)
    async with asyncio.timeout(5):
        for text in MESSAGES:
            request = echo_pb.EchoRequest(message=f"abort:3:{text}", count=1)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await grpc_call(client, kind, request)
            assert (info.value.code(), info.value.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                text,
            )


async def test_grpcio_client_receives_every_error_code(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    client = grpc_client(server.address)
    async with asyncio.timeout(5):
        for status in ERROR_CODES:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await client.unary(
                    echo_pb.EchoRequest(message=f"abort:{status.value}:{status.name}")
                )
            assert (info.value.code().value[0], info.value.details()) == (status.value, status.name)


async def test_grpcio_client_sees_handler_exception_as_unknown(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    client = grpc_client(server.address)
    async with asyncio.timeout(5):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.unary(echo_pb.EchoRequest(message="raise"))
    assert info.value.code() is grpc.StatusCode.UNKNOWN
    assert "boom" in (info.value.details() or "")
