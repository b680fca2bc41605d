"""HTTP/2 rules (RFC 9113) as a raw peer sees rpcfw's server keep them: stream ids, request
header validation, connection errors (always a GOAWAY with the right code before the socket
ends), and what must be ignored or accepted (unknown frames and settings, padding)."""

from __future__ import annotations

import struct
from types import ModuleType

import pytest
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.echo_service import wait_until

from .raw_peer import (
    LIVENESS,
    MAX_FRAME,
    PREFACE,
    Err,
    Headers,
    call_ok,
    channel_unary,
    echo_server,
    grpc_message,
    headers_frames,
    hello,
    literal_block,
    raw_frame,
    raw_peer,
    reply_message,
    request_headers,
)

# frame type codes for raw frames
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE = range(9)
CONTINUATION = 9


# -- 9. stream ids --------------------------------------------------------------------------------
async def test_stream_ids_may_skip_but_not_be_even_or_reused(echo_pb: ModuleType) -> None:
    async with echo_server(echo_pb) as server:
        async with raw_peer(server.port) as peer:
            # 101 on a connection advertising 100 streams, with none open: only an id
            assert peer.server_settings[0x3] == 100
            await call_ok(echo_pb, peer, "on stream 101", stream_id=101)

            # an id lower than one already used names a closed stream: ignored (or
            # STREAM_CLOSED), no handler; the connection goes on
            await peer.send(headers_frames(99, literal_block(request_headers()), end_stream=True))
            await peer.sync()
            assert all(f.error_code == Err.STREAM_CLOSED for f in peer.frames_on(99))
            assert not peer.goaways
            assert await call_ok(echo_pb, peer, "after the stale id") == 103

            # an even id: a client cannot open it: connection error
            await peer.send(headers_frames(104, literal_block(request_headers()), end_stream=True))
            goaway = await peer.read_goaway()
            assert goaway.error_code == Err.PROTOCOL_ERROR
            assert goaway.last_stream_id == 103
            assert not peer.frames_on(104)
            await peer.read_until_eof()
        assert server.transport_stats().calls_started == 2
        await channel_unary(echo_pb, server)


# -- 10. request header validation ----------------------------------------------------------------
def _replace(headers: Headers, name: str, value: str | None) -> Headers:
    out = [(n, value if n == name else v) for n, v in headers]
    return [(n, v) for n, v in out if v is not None]


MALFORMED: dict[str, Headers] = {
    "uppercase-name": request_headers(extra=[("X-Upper", "1")]),
    "connection-header": request_headers(extra=[("connection", "keep-alive")]),
    "te-gzip": _replace(request_headers(), "te", "gzip"),
    "no-path": _replace(request_headers(), ":path", None),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_request_headers_reset_that_stream_only(
    echo_pb: ModuleType, case: str
) -> None:
    async with echo_server(echo_pb) as server:
        async with raw_peer(server.port) as peer:
            sid = peer.take_stream_id()
            await peer.send(
                headers_frames(sid, literal_block(MALFORMED[case]), end_stream=False),
                DataFrame(sid, data=grpc_message(hello(echo_pb)), flags=["END_STREAM"]),
            )
            log = await peer.response(sid)
            assert log.reset == Err.PROTOCOL_ERROR
            assert not log.blocks and not log.body
            assert server.transport_stats().calls_started == 0  # no handler ran
            await call_ok(echo_pb, peer, f"after {case}")
            assert len(peer.frames_on(sid)) == 1  # the RST_STREAM, nothing else
            assert not peer.goaways
        assert server.transport_stats().calls_started == 1
        await channel_unary(echo_pb, server)


# -- 11. connection errors ------------------------------------------------------------------------
_HEAD = literal_block(request_headers())
CONNECTION_ERRORS: dict[str, tuple[bool, bytes, Err]] = {
    # name: (handshake first, bytes sent, GOAWAY code)
    "bad-preface": (False, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", Err.PROTOCOL_ERROR),
    "first-frame-not-settings": (
        False,
        PREFACE + PingFrame(0, opaque_data=b"12345678").serialize(),
        Err.PROTOCOL_ERROR,
    ),
    "frame-larger-than-16384": (
        True,
        raw_frame(DATA, 0, 1, b"\0" * (MAX_FRAME + 1)),
        Err.FRAME_SIZE_ERROR,
    ),
    "data-on-stream-0": (True, raw_frame(DATA, 0, 0, b"x"), Err.PROTOCOL_ERROR),
    "data-on-idle-stream": (True, raw_frame(DATA, 0, 5, b"x"), Err.PROTOCOL_ERROR),
    "headers-on-stream-0": (True, raw_frame(HEADERS, 4, 0, _HEAD), Err.PROTOCOL_ERROR),
    "ping-of-7-bytes": (True, raw_frame(PING, 0, 0, b"1234567"), Err.FRAME_SIZE_ERROR),
    "ping-on-a-stream": (True, raw_frame(PING, 0, 1, b"12345678"), Err.PROTOCOL_ERROR),
    "settings-ack-with-payload": (True, raw_frame(SETTINGS, 1, 0, b"\0" * 6), Err.FRAME_SIZE_ERROR),
    "settings-length-not-6n": (True, raw_frame(SETTINGS, 0, 0, b"\0" * 5), Err.FRAME_SIZE_ERROR),
    "settings-on-a-stream": (True, raw_frame(SETTINGS, 0, 1), Err.PROTOCOL_ERROR),
    "enable-push-2": (
        True,
        raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 2, 2)),
        Err.PROTOCOL_ERROR,
    ),
    "initial-window-above-2^31-1": (
        True,
        raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 2**31)),
        Err.FLOW_CONTROL_ERROR,
    ),
    "max-frame-size-below-16384": (
        True,
        raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 5, 16383)),
        Err.PROTOCOL_ERROR,
    ),
    "window-update-of-0": (True, raw_frame(WINDOW_UPDATE, 0, 0, b"\0" * 4), Err.PROTOCOL_ERROR),
    "connection-window-overflow": (
        True,
        raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)),
        Err.FLOW_CONTROL_ERROR,
    ),
    "rst-stream-on-idle-stream": (
        True,
        raw_frame(RST_STREAM, 0, 7, b"\0\0\0\x08"),
        Err.PROTOCOL_ERROR,
    ),
    "push-promise-from-client": (
        True,
        raw_frame(PUSH_PROMISE, 4, 1, b"\0\0\0\x02"),
        Err.PROTOCOL_ERROR,
    ),
    "continuation-without-headers": (
        True,
        raw_frame(CONTINUATION, 4, 1, _HEAD),
        Err.PROTOCOL_ERROR,
    ),
    "header-block-interrupted": (
        True,
        raw_frame(HEADERS, 0, 1, _HEAD) + raw_frame(PING, 0, 0, b"12345678"),
        Err.PROTOCOL_ERROR,
    ),
    "invalid-hpack": (
        True,
        raw_frame(HEADERS, 4, 1, b"\xff\xff\xff\xff\xff\xff"),
        Err.COMPRESSION_ERROR,
    ),
}


@pytest.mark.parametrize("case", list(CONNECTION_ERRORS))
async def test_connection_error_is_goaway_with_its_code_then_eof(
    echo_pb: ModuleType, case: str
) -> None:
    handshake, sent, code = CONNECTION_ERRORS[case]
    async with echo_server(echo_pb) as server:
        async with raw_peer(server.port, handshake=handshake) as peer:
            await peer.send(sent)
            goaway = await peer.read_goaway()
            assert goaway.error_code == code, goaway
            assert goaway.last_stream_id == 0
            after = await peer.read_until_eof()
            assert not after  # nothing follows the GOAWAY
            assert len(peer.goaways) == 1
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        assert server.transport_stats().calls_started == 0
        await channel_unary(echo_pb, server)


# -- 13. what must be ignored or accepted ---------------------------------------------------------
async def test_unknown_frames_and_settings_are_ignored_and_padding_is_accepted(
    echo_pb: ModuleType,
) -> None:
    async with echo_server(echo_pb) as server:
        # unknown SETTINGS ids in the very first SETTINGS (8 is ENABLE_CONNECT_PROTOCOL, an
        # extension rpcfw does not implement; 0xF00D and 0xFFFF are unassigned)
        async with raw_peer(server.port, handshake=False) as peer:
            unknown = struct.pack(">HIHIHI", 0x8, 1, 0xF00D, 7, 0xFFFF, 0xFFFFFFFF)
            await peer.send(PREFACE, raw_frame(SETTINGS, 0, 0, unknown))
            await peer.read_until(lambda f: peer.settings_acks == 1, "the SETTINGS ACK")
            # unknown frame types: on the connection, on an idle stream, with every flag set
            # (raw bytes: hyperframe's ExtensionFrame.serialize() writes a length of 0)
            await peer.send(
                raw_frame(0xFA, 0xFF, 0, b"junk"),
                raw_frame(0x20, 0, 1, b"x" * 100),
                raw_frame(0xBB, 0xFF, 0x7FFFFFFF),
                SettingsFrame(0, settings={0x99: 1}),  # and later, another unknown setting
            )
            # a call with a padded HEADERS (also carrying priority), an unknown frame and a
            # PRIORITY frame on its stream, and a padded DATA
            sid = peer.take_stream_id()
            block = peer.encoder.encode(request_headers())
            headers = HeadersFrame(
                sid,
                data=block,
                pad_length=40,
                depends_on=0,
                stream_weight=15,
                flags=["END_HEADERS", "PADDED", "PRIORITY"],
            )
            data = DataFrame(
                sid,
                data=grpc_message(hello(echo_pb, "padded")),
                pad_length=200,
                flags=["END_STREAM", "PADDED"],
            )
            await peer.send(
                headers,
                raw_frame(0xFA, 0x1, sid, b"in the middle"),
                PriorityFrame(sid, depends_on=0, stream_weight=200),
                WindowUpdateFrame(sid, window_increment=1000),
                data,
            )
            await peer.response(sid)
            assert reply_message(echo_pb, peer.streams[sid]) == "padded"
            # padding larger than a byte's worth of data, DATA split over frames
            sid = peer.take_stream_id()
            message = grpc_message(hello(echo_pb, "split"))
            await peer.send(
                headers_frames(sid, peer.encoder.encode(request_headers()), end_stream=False),
                DataFrame(sid, data=message[:3], pad_length=255, flags=["PADDED"]),
                DataFrame(sid, data=message[3:], pad_length=0, flags=["PADDED"]),
                DataFrame(sid, data=b"", flags=["END_STREAM"]),
            )
            await peer.response(sid)
            assert reply_message(echo_pb, peer.streams[sid]) == "split"
            assert not peer.goaways
            assert not peer.resets
            assert peer.settings_acks == 2
        assert server.transport_stats().calls_started == 2
        await channel_unary(echo_pb, server)
