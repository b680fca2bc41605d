"""The gRPC compression spec rule by rule, a raw HTTP/2 client against an rpcfw server: what
the server answers for each ``grpc-encoding`` / compressed-flag combination, and when it
compresses its answer."""

from __future__ import annotations

import struct
import zlib
from types import ModuleType
from typing import Any

from hyperframe.frame import DataFrame

import rpcfw
from rpcfw.compression import compress
from tests.echo_service import make_echo_service

from .raw_peer import (
    ECHO_UNARY,
    MAX_FRAME,
    RawPeer,
    echo_server,
    headers_frames,
    raw_peer,
    request_headers,
    serving,
)


def message(payload: bytes, flag: int) -> bytes:
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


async def call(
    peer: RawPeer, body: bytes, headers: list[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, str], bytes]:
    """One unary call with exactly these extra headers and this DATA; returns the response
    headers, trailers and body."""
    sid = peer.take_stream_id()
    block = peer.encoder.encode(request_headers(ECHO_UNARY, headers))
    chunks = [body[i : i + MAX_FRAME] for i in range(0, len(body), MAX_FRAME)]
    frames = [DataFrame(sid, data=chunk) for chunk in chunks]
    frames[-1].flags.add("END_STREAM")
    peer.write(headers_frames(sid, block, end_stream=False), *frames)
    await peer.drain()
    log = await peer.response(sid)
    assert log.headers is not None and log.trailers is not None, log
    return dict(log.headers), dict(log.trailers), bytes(log.body)


def hello(echo_pb: ModuleType) -> bytes:
    return echo_pb.EchoRequest(message="hello").SerializeToString()  # type: ignore[no-any-return]


async def test_unsupported_grpc_encoding_is_unimplemented_listing_the_supported_ones(
    echo_pb: ModuleType,
) -> None:
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        _, trailers, _ = await call(peer, message(b"whatever", 1), [("grpc-encoding", "snappy")])
        assert trailers["grpc-status"] == "12"  # UNIMPLEMENTED
        assert trailers["grpc-accept-encoding"] == "identity,deflate,gzip"


async def test_gzip_request_is_read_and_a_gzip_server_answers_compressed_when_accepted(
    echo_pb: ModuleType,
) -> None:
    compressible = echo_pb.EchoRequest(message="hello", payload=b"z" * 1000)
    request = message(compress("gzip", compressible.SerializeToString()), 1)
    async with echo_server(echo_pb, compression="gzip") as server, raw_peer(server.port) as peer:
        headers, trailers, body = await call(
            peer, request, [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")]
        )
        assert trailers["grpc-status"] == "0" and headers["grpc-encoding"] == "gzip"
        assert body[0] == 1  # compressed flag
        reply = echo_pb.EchoResponse.FromString(zlib.decompress(body[5:], 31))
        assert reply.message == "hello"


async def test_gzip_server_answers_uncompressed_to_a_client_that_does_not_accept_it(
    echo_pb: ModuleType,
) -> None:
    async with echo_server(echo_pb, compression="gzip") as server, raw_peer(server.port) as peer:
        headers, trailers, body = await call(peer, message(hello(echo_pb), 0), [])
        assert trailers["grpc-status"] == "0" and "grpc-encoding" not in headers
        assert body[0] == 0


async def test_uncompressed_message_in_a_gzip_call_is_read_as_it_is(echo_pb: ModuleType) -> None:
    """The flag is per message: a sender may skip compressing one."""
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        _, trailers, _ = await call(peer, message(hello(echo_pb), 0), [("grpc-encoding", "gzip")])
        assert trailers["grpc-status"] == "0"


async def test_compressed_flag_without_grpc_encoding_is_internal(echo_pb: ModuleType) -> None:
    """Fault: a message flagged compressed in a call that named no encoding."""
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        _, trailers, _ = await call(peer, message(compress("gzip", hello(echo_pb)), 1), [])
        assert trailers["grpc-status"] == "13"  # INTERNAL
        assert "identity" in trailers["grpc-message"]


async def test_corrupt_gzip_message_is_internal_and_the_connection_serves_on(
    echo_pb: ModuleType,
) -> None:
    """Fault: a message flagged gzip that is not gzip."""
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        _, trailers, _ = await call(
            peer, message(b"\x1f\x8bnot really gzip", 1), [("grpc-encoding", "gzip")]
        )
        assert trailers["grpc-status"] == "13"
        _, trailers, _ = await call(peer, message(hello(echo_pb), 0), [])
        assert trailers["grpc-status"] == "0"


async def test_gzip_bomb_is_resource_exhausted_and_the_connection_serves_on(
    echo_pb: ModuleType,
) -> None:
    """Fault: 64 MiB of zeros in a ~64 KiB gzip message; the server's limit is 4 MiB."""
    bomb = echo_pb.EchoRequest(payload=bytes(64 * 1024 * 1024)).SerializeToString()
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        _, trailers, _ = await call(
            peer, message(compress("gzip", bomb), 1), [("grpc-encoding", "gzip")]
        )
        assert trailers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
        assert "decompressed" in trailers["grpc-message"]
        _, trailers, _ = await call(peer, message(hello(echo_pb), 0), [])
        assert trailers["grpc-status"] == "0"


async def test_handler_chooses_compression_per_call_when_the_client_accepts_it(
    echo_pb: ModuleType,
) -> None:
    """``context.set_compression()`` on a server configured without compression."""
    base: Any = type(make_echo_service(echo_pb, "s1"))

    class Deflating(base):  # type: ignore[misc,valid-type]
        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            context.set_compression(rpcfw.Compression.DEFLATE)
            return await super().unary(request, context)

    big = echo_pb.EchoRequest(message="hi", payload=b"z" * 1000).SerializeToString()
    async with serving([Deflating()]) as server, raw_peer(server.port) as peer:
        headers, trailers, body = await call(
            peer, message(big, 0), [("grpc-accept-encoding", "identity,deflate")]
        )
        assert headers["grpc-encoding"] == "deflate" and body[0] == 1
        headers, trailers, body = await call(peer, message(big, 0), [])  # does not accept it
        assert "grpc-encoding" not in headers and body[0] == 0 and trailers["grpc-status"] == "0"
