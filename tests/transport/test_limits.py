"""Every limit of H2Config on a server core: stream slots, metadata size, header block floods,
RST_STREAM rate (Rapid Reset), PING strikes, and our own GOAWAY."""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame

from rpcfw.transport.config import H2Config
from rpcfw.transport.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamReset,
)
from rpcfw.transport.frames import ErrorCode

from .peer import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    FakeClock,
    ScriptedPeer,
    assert_connection_error,
    of_type,
    raw_frame,
    server_core,
)

CALM = ErrorCode.ENHANCE_YOUR_CALM


def request(peer: ScriptedPeer, stream_id: int, end_stream: bool = False) -> list[object]:
    return list(peer.send(peer.headers(stream_id, REQUEST, end_stream=end_stream)))


def finish(peer: ScriptedPeer, stream_id: int) -> None:
    """Answer a stream whose request has ended and release it, as a handler would."""
    core = peer.core
    core.send_headers(stream_id, RESPONSE)
    core.send_data(stream_id, b"\0\0\0\0\0")
    core.send_headers(stream_id, TRAILERS, end_stream=True)
    core.release_stream(stream_id)


# -- concurrent streams -----------------------------------------------------------------------
def test_stream_beyond_max_concurrent_streams_is_refused() -> None:
    core, peer = server_core(H2Config(max_concurrent_streams=3))
    for stream_id in (1, 3, 5):
        assert request(peer, stream_id) == [RequestReceived(stream_id, REQUEST, False)]
    assert peer.output() == []
    assert request(peer, 7) == []
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (7, ErrorCode.REFUSED_STREAM)
    assert core.streams_refused == 1
    assert core.open_streams == 3
    assert not core.closed
    # frames the client had in flight on the refused stream are ignored
    assert peer.send(peer.data(7, b"x", end_stream=True)) == []
    assert peer.output() == []


def test_a_released_slot_takes_a_new_stream() -> None:
    core, peer = server_core(H2Config(max_concurrent_streams=2))
    assert request(peer, 1, end_stream=True) == [RequestReceived(1, REQUEST, True)]
    assert request(peer, 3) == [RequestReceived(3, REQUEST, False)]
    assert request(peer, 5) == []
    assert core.streams_refused == 1
    finish(peer, 1)
    assert core.open_streams == 1
    peer.output()
    assert request(peer, 7) == [RequestReceived(7, REQUEST, False)]
    assert peer.output() == []


def test_a_reset_stream_holds_its_slot_until_released() -> None:
    core, peer = server_core(H2Config(max_concurrent_streams=1))
    assert request(peer, 1) == [RequestReceived(1, REQUEST, False)]
    assert peer.send(peer.rst_stream(1)) == [StreamReset(1, ErrorCode.CANCEL, True)]
    assert request(peer, 3) == []  # the handler of stream 1 has not returned yet
    assert core.streams_refused == 1
    core.release_stream(1)
    assert request(peer, 5) == [RequestReceived(5, REQUEST, False)]


# -- request metadata larger than max_header_list_size ------------------------------------------
BIG = [(f"x-meta-{i}", chr(ord("a") + i) * 300) for i in range(4)]  # 4 x 340 bytes


def test_oversized_metadata_gets_resource_exhausted_and_the_connection_lives() -> None:
    core, peer = server_core(H2Config(max_header_list_size=1024))
    assert request_with(peer, 1, [*REQUEST, *BIG]) == []
    headers, rst = peer.output()
    assert isinstance(headers, HeadersFrame) and "END_STREAM" in headers.flags
    response = dict(peer.decode([headers]))
    assert response[":status"] == "200"
    assert response["grpc-status"] == "8"
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (1, ErrorCode.NO_ERROR)
    assert not core.closed
    assert core.open_streams == 0
    # the body the client had already sent is ignored
    assert peer.send(peer.data(1, b"\0" * 100, end_stream=True)) == []
    # the HPACK state stayed in step: this block refers to entries the big one added
    block = peer.encode([*REQUEST, BIG[0]])
    assert len(block) < 20  # all of it from the dynamic table
    events = peer.send(peer.header_block(3, block, end_stream=True))
    assert events == [RequestReceived(3, [*REQUEST, BIG[0]], True)]


def test_oversized_metadata_with_end_stream_is_not_reset() -> None:
    core, peer = server_core(H2Config(max_header_list_size=1024))
    assert request_with(peer, 1, [*REQUEST, *BIG], end_stream=True) == []
    (headers,) = peer.output()
    assert isinstance(headers, HeadersFrame) and "END_STREAM" in headers.flags
    assert dict(peer.decode([headers]))["grpc-status"] == "8"
    assert not core.closed


def test_metadata_at_the_limit_is_accepted() -> None:
    headers = [*REQUEST, ("x-pad", "")]
    size = sum(len(n) + len(v) + 32 for n, v in headers)
    headers[-1] = ("x-pad", "p" * (1024 - size))
    _, peer = server_core(H2Config(max_header_list_size=1024))
    assert request_with(peer, 1, headers) == [RequestReceived(1, headers, False)]


def request_with(
    peer: ScriptedPeer, stream_id: int, headers: list[tuple[str, str]], end_stream: bool = False
) -> list[object]:
    return list(peer.send(peer.headers(stream_id, headers, end_stream=end_stream)))


def test_continuation_flood_is_enhance_your_calm() -> None:
    config = H2Config(max_header_list_size=16 << 10, max_header_block_size=64 << 10)
    _, peer = server_core(config)
    chunk = b"\x00" * 16384
    assert peer.send(peer.header_block(1, chunk, end_headers=False)) == []
    for _ in range(3):  # 64 KiB: at the limit, still assembling
        assert peer.send(peer.continuation(1, chunk, end_headers=False)) == []
    assert peer.output() == []
    events = peer.send(peer.continuation(1, b"\x00", end_headers=False))
    assert_connection_error(peer, events, CALM, "header block too large")


# -- Rapid Reset: a token bucket over RST_STREAM of unfinished streams --------------------------
def reset_one(peer: ScriptedPeer, stream_id: int) -> list[object]:
    assert request(peer, stream_id) == [RequestReceived(stream_id, REQUEST, False)]
    events = list(peer.send(peer.rst_stream(stream_id)))
    peer.core.release_stream(stream_id)
    return events


def test_reset_burst_then_enhance_your_calm() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_reset_burst=5, max_resets_per_second=2.0), clock)
    for i in range(5):
        assert reset_one(peer, 1 + 2 * i) == [StreamReset(1 + 2 * i, ErrorCode.CANCEL, True)]
    assert peer.output() == []
    assert request(peer, 11) == [RequestReceived(11, REQUEST, False)]
    events = peer.send(peer.rst_stream(11))
    assert_connection_error(peer, events, CALM, "too_many_resets")
    assert core.resets_received == 6


def test_reset_tokens_refill_with_time() -> None:
    clock = FakeClock()
    _, peer = server_core(H2Config(max_reset_burst=5, max_resets_per_second=2.0), clock)
    stream_ids = iter(range(1, 1000, 2))
    for _ in range(5):
        assert len(reset_one(peer, next(stream_ids))) == 1
    clock.advance(1.0)  # two tokens at 2 per second
    for _ in range(2):
        assert len(reset_one(peer, next(stream_ids))) == 1
    clock.advance(0.49)  # not yet a whole token
    sid = next(stream_ids)
    assert request(peer, sid) == [RequestReceived(sid, REQUEST, False)]
    assert_connection_error(peer, peer.send(peer.rst_stream(sid)), CALM, "too_many_resets")


def test_reset_tokens_do_not_accumulate_beyond_the_burst() -> None:
    clock = FakeClock()
    _, peer = server_core(H2Config(max_reset_burst=3, max_resets_per_second=10.0), clock)
    clock.advance(3600.0)
    stream_ids = iter(range(1, 1000, 2))
    for _ in range(3):
        assert len(reset_one(peer, next(stream_ids))) == 1
    sid = next(stream_ids)
    request(peer, sid)
    assert_connection_error(peer, peer.send(peer.rst_stream(sid)), CALM, "too_many_resets")


def test_resets_of_finished_streams_are_not_counted() -> None:
    core, peer = server_core(H2Config(max_reset_burst=1, max_resets_per_second=0.001))
    for i in range(5):
        stream_id = 1 + 2 * i
        request(peer, stream_id)
        core.send_headers(stream_id, RESPONSE)
        core.send_headers(stream_id, TRAILERS, end_stream=True)  # finished on our side
        assert peer.send(peer.rst_stream(stream_id)) == [
            StreamReset(stream_id, ErrorCode.CANCEL, True)
        ]
        core.release_stream(stream_id)
    assert not core.closed
    assert core.resets_received == 0


# -- PING strikes -------------------------------------------------------------------------------
def pings(peer: ScriptedPeer, count: int, clock: FakeClock, every: float) -> list[object]:
    events: list[object] = []
    for i in range(count):
        if i:
            clock.advance(every)
        events += peer.send(peer.ping(b"%08d" % i))
    return events


def test_fourth_quick_ping_without_calls_is_too_many_pings() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_ping_strikes=2), clock)
    assert pings(peer, 3, clock, every=1.0) == []
    assert len(of_type(peer.output(), PingFrame)) == 3  # all three acked
    assert core.ping_strikes == 2
    clock.advance(1.0)
    events = peer.send(peer.ping())
    assert_connection_error(peer, events, CALM, "too_many_pings")


def test_pings_without_calls_spaced_beyond_two_hours_never_strike() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_ping_strikes=2), clock)
    assert pings(peer, 10, clock, every=2 * 3600.0) == []
    assert core.ping_strikes == 0
    assert not core.closed


def test_pings_without_calls_when_permitted_use_the_min_interval() -> None:
    clock = FakeClock()
    config = H2Config(max_ping_strikes=2, min_ping_interval=10.0, permit_pings_without_calls=True)
    core, peer = server_core(config, clock)
    assert pings(peer, 10, clock, every=10.0) == []
    assert core.ping_strikes == 0
    for strikes in (1, 2):
        clock.advance(9.0)
        assert peer.send(peer.ping()) == []
        assert core.ping_strikes == strikes
    clock.advance(9.0)
    assert_connection_error(peer, peer.send(peer.ping()), CALM, "too_many_pings")


def test_pings_during_calls_spaced_beyond_the_interval_never_strike() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_ping_strikes=2, min_ping_interval=300.0), clock)
    request(peer, 1)
    assert pings(peer, 20, clock, every=300.0) == []
    assert core.ping_strikes == 0
    assert not core.closed


def test_sending_headers_or_data_forgives_ping_strikes() -> None:
    clock = FakeClock()
    core, peer = server_core(H2Config(max_ping_strikes=2, min_ping_interval=300.0), clock)
    request(peer, 1)
    assert pings(peer, 3, clock, every=1.0) == []
    assert core.ping_strikes == 2
    core.send_headers(1, RESPONSE)
    assert core.ping_strikes == 0
    assert pings(peer, 2, clock, every=1.0) == []  # one after the last: strikes 1, 2
    assert core.ping_strikes == 2
    core.send_data(1, b"\0\0\0\0\0")
    assert core.ping_strikes == 0
    assert pings(peer, 2, clock, every=1.0) == []
    assert not core.closed
    events = peer.send(peer.ping())
    assert_connection_error(peer, events, CALM, "too_many_pings")


# -- our GOAWAY -----------------------------------------------------------------------------------
def test_streams_above_our_goaway_are_refused() -> None:
    core, peer = server_core()
    assert request(peer, 1) == [RequestReceived(1, REQUEST, False)]
    core.goaway(3)
    (goaway,) = peer.output()
    assert isinstance(goaway, GoAwayFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (3, ErrorCode.NO_ERROR)
    assert request(peer, 3) == [RequestReceived(3, REQUEST, False)]  # at the limit: accepted
    assert request(peer, 5) == []
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (5, ErrorCode.REFUSED_STREAM)
    assert core.streams_refused == 1
    # streams below the limit go on
    assert peer.send(peer.data(1, b"x", end_stream=True)) == [DataReceived(1, b"x", True)]
    assert not core.closed


def test_a_second_goaway_only_narrows() -> None:
    core, peer = server_core()
    core.goaway(5)
    core.goaway(9)  # cannot widen
    core.goaway(1)
    frames = of_type(peer.output(), GoAwayFrame)
    assert [f.last_stream_id for f in frames] == [5, 5, 1]
    assert request(peer, 3) == []
    assert core.streams_refused == 1


def test_single_headers_frame_larger_than_max_header_block_size_is_enhance_your_calm() -> None:
    """The block limit holds for a block in one frame too (frames may be larger than it)."""
    config = H2Config(
        max_frame_size=1 << 16, max_header_list_size=16 << 10, max_header_block_size=16 << 10
    )
    _, peer = server_core(config)
    pad = ("x-pad", "p" * (16 << 10))
    size = len(hpack.Encoder().encode([*REQUEST, pad], huffman=False))
    pad = ("x-pad", "p" * ((16 << 10) - (size - (16 << 10)) + 1))
    block = bytes(peer.encoder.encode([*REQUEST, pad], huffman=False))
    assert len(block) == (16 << 10) + 1
    events = peer.send(peer.header_block(1, block, end_stream=True))
    assert_connection_error(peer, events, CALM, "header block too large")


def test_unended_headers_frame_larger_than_max_header_block_size_is_enhance_your_calm() -> None:
    config = H2Config(
        max_frame_size=1 << 16, max_header_list_size=16 << 10, max_header_block_size=16 << 10
    )
    _, peer = server_core(config)
    block = b"\x00" * ((16 << 10) + 1)
    events = peer.send(peer.header_block(1, block, end_headers=False))
    assert_connection_error(peer, events, CALM, "header block too large")


def test_closing_after_a_goaway_never_raises_the_last_stream_id() -> None:
    """RFC 9113 6.8: the peer may have retried the streams above our first GOAWAY's last id
    elsewhere, so no later GOAWAY (a connection error's included) may name a higher id."""
    core, peer = server_core()
    assert request(peer, 1) == [RequestReceived(1, REQUEST, False)]
    core.goaway(1)
    assert request(peer, 3) == []  # refused
    peer.output()
    events = peer.send(raw_frame(0x0, 0, 0, b"x"))  # DATA on stream 0: a connection error
    assert events[-1] == ConnectionTerminated(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
    (goaway,) = peer.output()
    assert isinstance(goaway, GoAwayFrame)
    assert (goaway.last_stream_id, goaway.error_code) == (1, ErrorCode.PROTOCOL_ERROR)


def test_close_after_a_goaway_keeps_its_last_stream_id() -> None:
    core, peer = server_core()
    request(peer, 1)
    request(peer, 3)
    core.goaway(1)
    core.close()
    assert [f.last_stream_id for f in of_type(peer.output(), GoAwayFrame)] == [1, 1]


def split_request(
    peer: ScriptedPeer, stream_id: int, block: bytes, frame_size: int, end_stream: bool = True
) -> bytes:
    """``block`` as HEADERS + CONTINUATION frames of ``frame_size`` bytes."""
    parts = [block[i : i + frame_size] for i in range(0, len(block), frame_size)]
    out = peer.header_block(stream_id, parts[0], end_stream=end_stream, end_headers=False)
    out += b"".join(peer.continuation(stream_id, p, end_headers=False) for p in parts[1:])
    return out + peer.continuation(stream_id, b"")


def assert_resource_exhausted(peer: ScriptedPeer, stream_id: int) -> None:
    frames = peer.output()
    (headers,) = of_type(frames, HeadersFrame)
    assert headers.stream_id == stream_id and "END_STREAM" in headers.flags
    assert dict(peer.decode([headers]))["grpc-status"] == "8"
    assert not peer.core.closed


@pytest.mark.parametrize("frame_size", [100, 16384])
@pytest.mark.parametrize("indexed", [False, True])
def test_oversized_metadata_in_continuations_is_resource_exhausted(
    frame_size: int, indexed: bool
) -> None:
    """The same answer when the block arrives in several frames (decoded as it arrives, large
    values skipped): RESOURCE_EXHAUSTED, the connection lives, the HPACK table in step."""
    _, peer = server_core()  # max_header_list_size 16 KiB, table 4 KiB
    big = ("x-big", "v" * (64 << 10))
    fields = [*REQUEST, *BIG, big if indexed else hpack.NeverIndexedHeaderTuple(*big)]
    block = bytes(peer.encoder.encode(fields, huffman=False))
    assert peer.send(split_request(peer, 1, block, frame_size)) == []
    assert_resource_exhausted(peer, 1)
    follow = [*REQUEST, ("x-after", "1")]
    assert peer.send(peer.headers(3, follow, end_stream=True)) == [RequestReceived(3, follow, True)]


@pytest.mark.parametrize("frame_size", [50, 100, 1000])
def test_oversized_indexed_metadata_in_continuations_below_the_table_size(frame_size: int) -> None:
    """With a list limit below the HPACK table size, a value over the limit may still be
    indexed: the decoder must keep the table in step and answer the stream, not fail."""
    _, peer = server_core(H2Config(max_header_list_size=1024))  # table 4096
    fields = [*REQUEST, ("x-a", "a" * 2000)]
    block = bytes(peer.encoder.encode(fields, huffman=False))
    assert peer.send(split_request(peer, 1, block, frame_size)) == []
    assert_resource_exhausted(peer, 1)
    # the entry is in both tables: this block refers to it by index
    small = bytes(peer.encoder.encode([*REQUEST, ("x-a", "a" * 2000)], huffman=False))
    assert len(small) < 20
    events = peer.send(peer.header_block(3, small, end_stream=True))
    assert events == []  # still over the limit: answered again
    assert_resource_exhausted(peer, 3)
    follow = [*REQUEST, ("x-after", "1")]
    assert peer.send(peer.headers(5, follow, end_stream=True)) == [RequestReceived(5, follow, True)]


def test_a_header_block_in_more_continuation_frames_than_allowed_is_enhance_your_calm() -> None:
    """Fault: a block cut into many tiny CONTINUATION frames (each costs a frame's work)."""
    _, peer = server_core(H2Config(max_continuation_frames=8))
    block = bytes(peer.encoder.encode(REQUEST))
    assert len(block) > 10
    events = peer.send(split_request(peer, 1, block, 1))  # one byte per frame
    assert_connection_error(
        peer, events, ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames"
    )


def test_a_header_block_in_as_many_continuation_frames_as_allowed_is_served() -> None:
    _, peer = server_core(H2Config(max_continuation_frames=64))
    block = bytes(peer.encoder.encode(REQUEST))
    frames = split_request(peer, 1, block, -(-len(block) // 60))  # <= 61 CONTINUATIONs
    assert peer.send(frames) == [RequestReceived(1, REQUEST, True)]
