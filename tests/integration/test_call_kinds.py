"""All four call kinds through generated stubs, for both message backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw


async def test_unary_returns_the_reply(echo: ModuleType, echo_channel: rpcfw.Channel) -> None:
    reply = await echo.EchoStub(echo_channel).unary(
        echo.EchoRequest(message="hi", payload=b"\x00\x01")
    )
    assert (reply.message, reply.payload, reply.server_id) == ("hi", b"\x00\x01", "s1")


async def test_server_stream_yields_count_replies_in_order(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    stub = echo.EchoStub(echo_channel)
    replies = [r async for r in stub.server_stream(echo.EchoRequest(message="m", count=5))]
    assert [r.index for r in replies] == [0, 1, 2, 3, 4]


async def test_server_stream_with_zero_replies_ends_ok(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    stub = echo.EchoStub(echo_channel)
    assert [r async for r in stub.server_stream(echo.EchoRequest(message="m", count=0))] == []


async def test_client_stream_takes_a_list_and_an_async_iterable(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    stub = echo.EchoStub(echo_channel)
    reply = await stub.client_stream([echo.EchoRequest(message=w) for w in "abc"])
    assert (reply.message, reply.index) == ("a,b,c", 3)

    async def gen() -> AsyncIterator[Any]:
        for word in ("x", "y"):
            await asyncio.sleep(0)  # a real async iterable: suspends between messages
            yield echo.EchoRequest(message=word)

    assert (await stub.client_stream(gen())).message == "x,y"
    assert (await stub.client_stream([])).index == 0


async def test_bidi_stream_object_sends_and_receives_interleaved(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    stub = echo.EchoStub(echo_channel)
    async with stub.bidi(metadata={"x-call": "bidi"}) as stream:
        for index, word in enumerate(["a", "b", "c"]):
            await stream.send(echo.EchoRequest(message=word))
            reply = await stream.recv()
            assert reply is not None and (reply.message, reply.index) == (word, index)
        await stream.done_writing()
        assert await stream.recv() is None
        # ended by the server's trailers: the metadata it echoes there came with them
        assert stream.trailing_metadata is not None
        assert stream.trailing_metadata.get_text("x-call") == "bidi"


async def test_bidi_convenience_form_consumes_an_iterable(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    stub = echo.EchoStub(echo_channel)
    replies = [
        r.message async for r in stub.bidi([echo.EchoRequest(message=w) for w in ("p", "q")])
    ]
    assert replies == ["p", "q"]


async def test_concurrent_calls_share_one_connection(echo_pb: ModuleType) -> None:
    from tests.echo_service import make_echo_service

    async with rpcfw.Server([make_echo_service(echo_pb, "s1")]) as server:
        await server.start()
        async with rpcfw.Channel(server.address) as channel:
            stub = echo_pb.EchoStub(channel)
            replies = await asyncio.gather(
                *(stub.unary(echo_pb.EchoRequest(message=str(i))) for i in range(200))
            )
            assert sorted(int(r.message) for r in replies) == list(range(200))
            assert len([c for c in server._connections]) == 1


async def test_metadata_round_trips_initial_and_trailing(
    echo_pb: ModuleType, generated_root: Any
) -> None:
    from tests.echo_service import make_echo_service

    async with rpcfw.Server([make_echo_service(echo_pb, "s1")]) as server:
        await server.start()
        async with rpcfw.Channel(server.address) as channel:
            stub = echo_pb.EchoStub(channel)
            async with stub.bidi(metadata={"x-token": "t 1", "x-raw-bin": b"\x00\xff"}) as stream:
                await stream.send(echo_pb.EchoRequest(message="m"))
                assert await stream.recv() is not None
                await stream.done_writing()
                assert await stream.recv() is None
                assert stream.initial_metadata is not None and stream.trailing_metadata is not None
                assert stream.initial_metadata.get("x-token") == "t 1"
                assert stream.trailing_metadata.get("x-raw-bin") == b"\x00\xff"


@pytest.mark.parametrize("backend", ["protobuf", "betterproto2"])
async def test_each_backend_serves_the_other_backends_client(
    generated_root: Any, backend: str
) -> None:
    from tests.conftest import load_echo
    from tests.echo_service import make_echo_service

    server_mod = load_echo(generated_root, backend)
    client_mod = load_echo(generated_root, "betterproto2" if backend == "protobuf" else "protobuf")
    async with rpcfw.Server([make_echo_service(server_mod, "s1")]) as server:
        await server.start()
        async with rpcfw.Channel(server.address) as channel:
            reply = await client_mod.EchoStub(channel).unary(
                client_mod.EchoRequest(message="cross", count=7)
            )
            assert reply.message == "cross"
