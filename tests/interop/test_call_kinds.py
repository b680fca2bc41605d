"""Happy path of the four call kinds, both directions, for both rpcfw message backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc

import rpcfw

from .conftest import ConnectGrpc, Peer, StartServer


async def test_rpcfw_client_unary_to_grpcio_server(echo: ModuleType, grpcio_server: Peer) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(grpcio_server.address) as channel:
        reply = await echo.EchoStub(channel).unary(
            echo.EchoRequest(message="hi", payload=b"\x00\xff")
        )
    assert (reply.message, reply.payload, reply.server_id) == ("hi", b"\x00\xff", "grpcio")


async def test_rpcfw_client_server_stream_to_grpcio_server(
    echo: ModuleType, grpcio_server: Peer
) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(grpcio_server.address) as channel:
        stub = echo.EchoStub(channel)
        replies = [r async for r in stub.server_stream(echo.EchoRequest(message="m", count=5))]
        assert [r async for r in stub.server_stream(echo.EchoRequest(message="m", count=0))] == []
    assert [(r.message, r.index) for r in replies] == [("m", i) for i in range(5)]


async def test_rpcfw_client_client_stream_to_grpcio_server(
    echo: ModuleType, grpcio_server: Peer
) -> None:
    async def words() -> AsyncIterator[Any]:
        for word in ("x", "y", "z"):
            await asyncio.sleep(0)  # a real async iterable: suspends between messages
            yield echo.EchoRequest(message=word, payload=word.encode())

    async with asyncio.timeout(5), rpcfw.Channel(grpcio_server.address) as channel:
        stub = echo.EchoStub(channel)
        reply = await stub.client_stream(words())
        empty = await stub.client_stream([])
    assert (reply.message, reply.payload, reply.index) == ("x,y,z", b"xyz", 3)
    assert (empty.message, empty.index) == ("", 0)


async def test_rpcfw_client_bidi_interleaves_with_grpcio_server(
    echo: ModuleType, grpcio_server: Peer
) -> None:
    async with asyncio.timeout(5), rpcfw.Channel(grpcio_server.address) as channel:
        stub = echo.EchoStub(channel)
        async with stub.bidi(metadata={"x-call": "bidi"}) as stream:
            for index, word in enumerate("abc"):
                await stream.send(echo.EchoRequest(message=word))
                reply = await stream.recv()
                assert reply is not None and (reply.message, reply.index) == (word, index)
            await stream.done_writing()
            assert await stream.recv() is None
            # ended by the server's trailers: the metadata it echoes there came with them
            assert stream.trailing_metadata is not None
            assert stream.trailing_metadata.get_text("x-call") == "bidi"
        replies = [r.message async for r in stub.bidi([echo.EchoRequest(message=w) for w in "pq"])]
    assert replies == ["p", "q"]


async def test_grpcio_client_unary_to_rpcfw_server(
    echo: ModuleType, start_server: StartServer, grpc_client: ConnectGrpc, echo_pb: ModuleType
) -> None:
    client = grpc_client((await start_server("rpcfw", mod=echo)).address)
    async with asyncio.timeout(5):
        reply = await client.unary(echo_pb.EchoRequest(message="hi", payload=b"\x00\xff"))
    assert (reply.message, reply.payload, reply.server_id) == ("hi", b"\x00\xff", "rpcfw")


async def test_grpcio_client_server_stream_to_rpcfw_server(
    echo: ModuleType, start_server: StartServer, grpc_client: ConnectGrpc, echo_pb: ModuleType
) -> None:
    client = grpc_client((await start_server("rpcfw", mod=echo)).address)
    async with asyncio.timeout(5):
        replies = [r async for r in client.server_stream(echo_pb.EchoRequest(message="m", count=5))]
        empty = [r async for r in client.server_stream(echo_pb.EchoRequest(message="m", count=0))]
    assert [(r.message, r.index) for r in replies] == [("m", i) for i in range(5)]
    assert empty == []


async def test_grpcio_client_client_stream_to_rpcfw_server(
    echo: ModuleType, start_server: StartServer, grpc_client: ConnectGrpc, echo_pb: ModuleType
) -> None:
    client = grpc_client((await start_server("rpcfw", mod=echo)).address)
    async with asyncio.timeout(5):
        reply = await client.client_stream(
            iter([echo_pb.EchoRequest(message=w, payload=w.encode()) for w in "xyz"])
        )
        empty = await client.client_stream(iter([]))
    assert (reply.message, reply.payload, reply.index) == ("x,y,z", b"xyz", 3)
    assert (empty.message, empty.index) == ("", 0)


async def test_grpcio_client_bidi_interleaves_with_rpcfw_server(
    echo: ModuleType, start_server: StartServer, grpc_client: ConnectGrpc, echo_pb: ModuleType
) -> None:
    client = grpc_client((await start_server("rpcfw", mod=echo)).address)
    async with asyncio.timeout(5):
        call = client.bidi(metadata=(("x-call", "bidi"),))
        for index, word in enumerate("abc"):
            await call.write(echo_pb.EchoRequest(message=word))
            reply = await call.read()
            assert (reply.message, reply.index) == (word, index)
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF  # status OK: grpcio raises for any other
        # ended by rpcfw's trailers: the metadata the server echoes there came with them
        assert ("x-call", "bidi") in tuple(await call.trailing_metadata())
