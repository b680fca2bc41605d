"""No state is kept per finished stream: 10,000 streams through one core leave nothing behind."""

from __future__ import annotations

import gc
import tracemalloc
from collections import deque

from hpack.hpack import encode_integer
from hpack.huffman_table import decode_huffman

from rpcfw.transport.config import H2Config
from rpcfw.transport.connection import H2Connection
from rpcfw.transport.events import (
    DataReceived,
    RequestReceived,
    ResponseReceived,
    StreamReset,
    TrailersReceived,
)
from rpcfw.transport.frames import ErrorCode

from .peer import REQUEST, RESPONSE, TRAILERS, FakeClock, client_core, server_core

STREAMS = 10_000
MESSAGE = b"\0\0\0\0\x05hello"


def container_sizes(core: H2Connection) -> dict[str, int]:
    """The size of every container the core and its HPACK codecs hold."""
    sizes: dict[str, int] = {}
    for owner in (core, core._encoder, core._decoder):
        names = getattr(owner, "__slots__", None) or list(vars(owner))
        for name in names:
            value = getattr(owner, name)
            if isinstance(value, list | dict | set | deque | bytes) and name != "_out":
                sizes[f"{type(owner).__name__}.{name}"] = len(value)
    return sizes


def assert_no_stream_state(core: H2Connection) -> None:
    assert core.open_streams == 0
    assert core._streams == {}
    assert core._blocked == {}
    assert core._decoder._pending == b"" and core._decoder._fields == []
    assert core._buf == b""
    assert core.stream_ids() == []


def test_server_keeps_no_state_after_10000_streams() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_concurrent_streams=10), clock)
    peer.send(peer.window_update(0, 2**31 - 1 - 65535))  # the peer's connection window: all
    checkpoint: dict[str, int] | None = None
    for i in range(STREAMS):
        stream_id = 1 + 2 * i
        kind = i % 4
        headers = peer.header_block(stream_id, peer.indexed_block(REQUEST))
        if kind == 0:  # unary: request, response, trailers, release
            events = peer.send(headers, peer.data(stream_id, MESSAGE, end_stream=True))
            assert events == [
                RequestReceived(stream_id, REQUEST, False),
                DataReceived(stream_id, MESSAGE, True),
            ]
            core.consumed(stream_id, len(MESSAGE))
            core.send_headers(stream_id, RESPONSE)
            core.send_data(stream_id, MESSAGE)
            core.send_headers(stream_id, TRAILERS, end_stream=True)
        elif kind == 1:  # the client cancels mid-request
            events = peer.send(headers, peer.data(stream_id, MESSAGE))
            assert len(events) == 2
            assert peer.send(peer.rst_stream(stream_id)) == [
                StreamReset(stream_id, ErrorCode.CANCEL, True)
            ]
        elif kind == 2:  # the handler gives up early: release resets the stream
            assert peer.send(headers) == [RequestReceived(stream_id, REQUEST, False)]
            core.send_headers(stream_id, RESPONSE)
        else:  # a response larger than the stream window, reset while it waits for window
            assert peer.send(headers, peer.data(stream_id, MESSAGE, end_stream=True))
            core.send_headers(stream_id, RESPONSE)
            core.send_data(stream_id, b"r" * 70_000)
            core.send_headers(stream_id, TRAILERS, end_stream=True)
            assert core.pending_bytes(stream_id) == 70_000 - 65535 + 1
            assert peer.send(peer.rst_stream(stream_id)) == [
                StreamReset(stream_id, ErrorCode.CANCEL, True)
            ]
            peer.send(peer.window_update(0, 65535))
        core.release_stream(stream_id)
        core.data_to_send()
        clock.advance(1.0)  # the reset token bucket refills
        if i == 999:
            checkpoint = container_sizes(core)
    assert not core.closed
    assert_no_stream_state(core)
    assert container_sizes(core) == checkpoint
    assert core.highest_inbound_stream_id == 2 * STREAMS - 1
    assert core.streams_refused == 0


def test_client_keeps_no_state_after_10000_streams() -> None:
    core, peer = client_core(H2Config(), FakeClock(), settings={3: 10})
    checkpoint: dict[str, int] | None = None
    for i in range(STREAMS):
        stream_id = core.open_stream(REQUEST)
        assert stream_id == 1 + 2 * i
        core.send_data(stream_id, MESSAGE, end_stream=True)
        if i % 3 == 2:  # cancelled by the application before the response
            core.release_stream(stream_id)
            events = peer.send(peer.header_block(stream_id, peer.indexed_block(RESPONSE)))
            assert events == []
        else:
            events = peer.send(
                peer.header_block(stream_id, peer.indexed_block(RESPONSE)),
                peer.data(stream_id, MESSAGE),
                peer.header_block(stream_id, peer.indexed_block(TRAILERS), end_stream=True),
            )
            assert events == [
                ResponseReceived(stream_id, RESPONSE, False),
                DataReceived(stream_id, MESSAGE, False),
                TrailersReceived(stream_id, TRAILERS),
            ]
            core.release_stream(stream_id)
        core.data_to_send()
        if i == 999:
            checkpoint = container_sizes(core)
    assert not core.closed
    assert_no_stream_state(core)
    assert core._open_local == 0
    assert core.can_open_stream()
    assert container_sizes(core) == checkpoint


def hpack_string(raw: bytes, huffman: bool) -> bytes:
    length = bytearray(encode_integer(len(raw), 7))
    if huffman:
        length[0] |= 0x80
    return bytes(length) + raw


def never_indexed(name: str, value: bytes, huffman: bool = False) -> bytes:
    """A literal field never indexed, new name (RFC 7541 6.2.3); ``value`` as given (already
    Huffman-coded when ``huffman``)."""
    return b"\x10" + hpack_string(name.encode(), False) + hpack_string(value, huffman)


def test_large_header_blocks_are_not_retained() -> None:
    """Request metadata over the limit is answered RESOURCE_EXHAUSTED and the connection lives,
    so a peer can send many such blocks: none of them may stay in the core's memory (in a
    decoder cache or elsewhere)."""
    core, peer = server_core()
    tttt = bytes(peer.encoder.encode([("x", "tttt")], huffman=True))[-3:]  # 4 x 6 bits, no pad
    assert decode_huffman(tttt) == b"tttt"
    blocks = []
    for i in range(20):  # distinct blocks of 16 KiB plain + 48 KiB Huffman (64 KiB decoded)
        block = peer.encode(REQUEST) + never_indexed("x-plain", b"%06d" % i + b"p" * (16 << 10))
        block += never_indexed("authorization", tttt * ((16 << 10) + i), huffman=True)
        frames = [block[j : j + 16384] for j in range(0, len(block), 16384)]
        data = peer.header_block(1 + 2 * i, frames[0], end_stream=True, end_headers=False)
        data += b"".join(peer.continuation(1 + 2 * i, f, end_headers=False) for f in frames[1:])
        blocks.append(data + peer.continuation(1 + 2 * i, b""))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for data in blocks:
            assert core.receive(data) == []  # answered with a trailers-only response
            core.data_to_send()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert not core.closed
    assert core.streams_refused == 0
    assert grown < 256 << 10, f"the core kept {grown} bytes of header blocks"
