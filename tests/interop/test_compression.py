"""Compression with grpcio as the peer, both directions, gzip and deflate: each side reads the
other's compressed messages and compresses its own when configured (checked on the wire: the
compressed flag of every DATA frame, through a recording proxy), per-call overrides, and the
receive limit on decompressed size (a compressed bomb gets RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from tests.echo_service import make_echo_service

from .grpc_peer import GrpcEcho, GrpcEchoClient
from .wiretap import WireTap

DATA = 0x0
ENCODINGS = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}
PAYLOAD = b"compressible " * 5000  # 65 KB that compress to a few hundred bytes
MiB = 1024 * 1024


def flags(tap: WireTap, direction: str) -> set[int]:
    """The compressed flags of every gRPC message one side sent (messages may span DATA
    frames: each frame either goes on with a message or starts the next one)."""
    found: set[int] = set()
    remaining: dict[int, int] = {}  # stream -> bytes of the current message still to come
    for frame in tap.sent(direction, DATA):
        offset, left = 0, remaining.get(frame.stream_id, 0)
        while offset < frame.length:
            if left:
                step = min(left, frame.length - offset)
                offset, left = offset + step, left - step
                continue
            assert offset + 5 <= len(frame.payload), "a message prefix past the recorded bytes"
            found.add(frame.payload[offset])
            left = int.from_bytes(frame.payload[offset + 1 : offset + 5], "big")
            offset += 5
        remaining[frame.stream_id] = left
    return found


async def tapped(port: int) -> WireTap:
    tap = WireTap()
    await tap.start(port)
    return tap


@pytest.fixture
async def taps() -> AsyncIterator[list[WireTap]]:
    started: list[WireTap] = []
    yield started
    for tap in started:
        await tap.close()


async def requests(echo_pb: ModuleType, *words: str) -> AsyncIterator[Any]:
    for word in words:
        yield echo_pb.EchoRequest(message=word, payload=PAYLOAD)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_grpcio_client_compressing_and_rpcfw_server_compressing_back(
    echo_pb: ModuleType, encoding: str, taps: list[WireTap]
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")], compression=encoding)
    await server.start("127.0.0.1", 0)
    assert server.port is not None
    tap = await tapped(server.port)
    taps.append(tap)
    channel = grpc.aio.insecure_channel(tap.address, compression=ENCODINGS[encoding])
    try:
        client = GrpcEchoClient(channel, echo_pb)
        async with asyncio.timeout(10):
            reply = await client.unary(echo_pb.EchoRequest(message="u", payload=PAYLOAD))
            stream = client.server_stream(echo_pb.EchoRequest(message="s", count=3))
            streamed = [r.index async for r in stream]
            summed = await client.client_stream(
                [echo_pb.EchoRequest(message=w, payload=PAYLOAD) for w in "abc"]
            )
            bidi = [r.message async for r in client.bidi(requests(echo_pb, "x", "y"))]
    finally:
        await channel.close()
        await server.stop(0)
    assert reply.payload == PAYLOAD and streamed == [0, 1, 2]
    assert summed.message == "a,b,c" and summed.payload == PAYLOAD * 3
    assert bidi == ["x", "y"]
    # each side compressed (small messages that gzip would grow go as they are: the flag is
    # per message, and both grpcio and rpcfw skip those)
    assert 1 in flags(tap, "client") and 1 in flags(tap, "server")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_rpcfw_client_compressing_and_grpcio_server_compressing_back(
    echo_pb: ModuleType, encoding: str, taps: list[WireTap]
) -> None:
    server = grpc.aio.server(compression=ENCODINGS[encoding])
    server.add_generic_rpc_handlers([GrpcEcho(echo_pb).handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    tap = await tapped(port)
    taps.append(tap)
    try:
        async with rpcfw.Channel(tap.address, compression=encoding) as channel, asyncio.timeout(10):
            stub = echo_pb.EchoStub(channel)
            reply = await stub.unary(echo_pb.EchoRequest(message="u", payload=PAYLOAD))
            streamed = [r.index async for r in stub.server_stream(echo_pb.EchoRequest(count=3))]
            summed = await stub.client_stream(requests(echo_pb, "a", "b"))
            async with stub.bidi() as bidi:
                await bidi.send(echo_pb.EchoRequest(message="x", payload=PAYLOAD))
                await bidi.done_writing()
                bidi_replies = [r.message async for r in bidi]
    finally:
        await server.stop(0)
    assert reply.payload == PAYLOAD and streamed == [0, 1, 2]
    assert summed.message == "a,b" and bidi_replies == ["x"]
    assert 1 in flags(tap, "client") and 1 in flags(tap, "server")


async def test_per_call_compression_overrides_the_channel_default(
    echo_pb: ModuleType, taps: list[WireTap]
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")])  # answers uncompressed
    await server.start("127.0.0.1", 0)
    assert server.port is not None
    try:
        sent = []
        for channel_default, per_call in [("gzip", "identity"), (None, "deflate")]:
            tap = await tapped(server.port)
            taps.append(tap)
            async with rpcfw.Channel(tap.address, compression=channel_default) as channel:
                stub = echo_pb.EchoStub(channel)
                await stub.unary(echo_pb.EchoRequest(payload=PAYLOAD), compression=per_call)
            sent.append((flags(tap, "client"), flags(tap, "server")))
    finally:
        await server.stop(0)
    assert sent == [({0}, {0}), ({1}, {0})]


async def test_compressed_bombs_get_resource_exhausted_in_both_directions(
    echo_pb: ModuleType,
) -> None:
    """Faults: a grpcio client sends 64 MiB of zeros gzip-compressed to an rpcfw server
    (limit 4 MiB); a grpcio server echoes 2 MiB of zeros gzip-compressed to an rpcfw client
    (limit 1 MiB). Each is refused at the decompressed size, and the next call works."""
    bomb = echo_pb.EchoRequest(payload=bytes(64 * MiB))
    server = rpcfw.Server([make_echo_service(echo_pb, "rpcfw")])
    await server.start("127.0.0.1", 0)
    channel = grpc.aio.insecure_channel(server.address, compression=grpc.Compression.Gzip)
    try:
        client = GrpcEchoClient(channel, echo_pb)
        with pytest.raises(grpc.aio.AioRpcError) as sent_bomb:
            await client.unary(bomb, timeout=10)
        after = await client.unary(echo_pb.EchoRequest(message="after"), timeout=10)
    finally:
        await channel.close()
        await server.stop(0)
    assert sent_bomb.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert after.message == "after"

    peer = grpc.aio.server(compression=grpc.Compression.Gzip)
    peer.add_generic_rpc_handlers([GrpcEcho(echo_pb).handler()])
    port = peer.add_insecure_port("127.0.0.1:0")
    await peer.start()
    try:
        async with rpcfw.Channel(
            f"127.0.0.1:{port}", compression="gzip", max_receive_message_length=MiB
        ) as rpc_channel:
            stub = echo_pb.EchoStub(rpc_channel)
            with pytest.raises(rpcfw.RpcError) as got_bomb:
                await stub.unary(echo_pb.EchoRequest(payload=bytes(2 * MiB)), timeout=10)
            again = await stub.unary(echo_pb.EchoRequest(message="again"), timeout=10)
    finally:
        await peer.stop(0)
    assert got_bomb.value.status is rpcfw.Status.RESOURCE_EXHAUSTED
    assert "decompressed" in str(got_bomb.value)
    assert again.message == "again"
