"""The server core against RFC 9113, one rule per test, driven by scripted frames."""

from __future__ import annotations

import hpack
import pytest
from hpack.hpack import decode_integer
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from rpcfw.transport.config import H2Config
from rpcfw.transport.connection import H2Connection
from rpcfw.transport.events import (
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    PingAcked,
    RequestReceived,
    SettingsReceived,
    StreamReset,
    TrailersReceived,
)
from rpcfw.transport.frames import CONNECTION_PREFACE, ErrorCode

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

PROTOCOL_ERROR = ErrorCode.PROTOCOL_ERROR
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8


def fresh_server(config: H2Config | None = None) -> tuple[H2Connection, ScriptedPeer]:
    """A server core that has sent its SETTINGS and has read nothing yet."""
    core = H2Connection(config, client=False, clock=FakeClock())
    core.initiate()
    peer = ScriptedPeer(core)
    peer.output()
    return core, peer


def open_request(peer: ScriptedPeer, stream_id: int = 1, end_stream: bool = False) -> None:
    events = peer.send(peer.headers(stream_id, REQUEST, end_stream=end_stream))
    assert events == [RequestReceived(stream_id, REQUEST, end_stream)]


# -- connection preface and SETTINGS ---------------------------------------------------------
def test_server_sends_its_settings_and_window_first() -> None:
    core = H2Connection(H2Config(max_concurrent_streams=7), client=False)
    core.initiate()
    settings, window = ScriptedPeer(core).output()
    assert isinstance(settings, SettingsFrame) and "ACK" not in settings.flags
    assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 7
    assert settings.settings[SettingsFrame.ENABLE_PUSH] == 0
    assert isinstance(window, WindowUpdateFrame) and window.stream_id == 0
    assert window.window_increment == (16 << 20) - 65535


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 9,
        raw_frame(SETTINGS, 0, 0),  # a SETTINGS frame without the preface
    ],
)
def test_preface_required(garbage: bytes) -> None:
    _, peer = fresh_server()
    events = peer.send(garbage)
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_preface_may_arrive_byte_by_byte() -> None:
    _, peer = fresh_server()
    data = peer.preface()
    for i in range(len(data) - 1):
        assert peer.send(data[i : i + 1]) == []
    assert peer.send(data[-1:]) == [SettingsReceived(True)]


def test_first_frame_must_be_settings() -> None:
    _, peer = fresh_server()
    events = peer.send(CONNECTION_PREFACE, peer.ping())
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_first_frame_must_not_be_a_settings_ack() -> None:
    _, peer = fresh_server()
    events = peer.send(CONNECTION_PREFACE, peer.settings(ack=True))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_settings_are_acked() -> None:
    _, peer = fresh_server()
    assert peer.send(peer.preface({SettingsFrame.MAX_FRAME_SIZE: 20000})) == [
        SettingsReceived(True)
    ]
    (ack,) = peer.output()
    assert isinstance(ack, SettingsFrame) and "ACK" in ack.flags and ack.settings == {}
    assert peer.send(peer.settings({SettingsFrame.MAX_CONCURRENT_STREAMS: 10})) == [
        SettingsReceived(False)
    ]
    (ack,) = peer.output()
    assert isinstance(ack, SettingsFrame) and "ACK" in ack.flags
    assert peer.send(peer.settings(ack=True)) == []  # the peer acking ours: nothing to do
    assert peer.output() == []


@pytest.mark.parametrize("length", [1, 5, 7, 13])
def test_settings_with_bad_length_is_frame_size_error(length: int) -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(SETTINGS, 0, 0, b"\0\x03" + b"\0" * (length - 2)))
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_settings_ack_with_payload_is_frame_size_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(SETTINGS, 0x1, 0, b"\0\x03\0\0\0\x01"))
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_settings_on_a_stream_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(SETTINGS, 0, 1))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_unknown_settings_are_ignored() -> None:
    core, peer = server_core()
    events = peer.send(peer.settings({0x99: 5, 0x8: 1, 0xFFFF: 2**32 - 1}))
    assert events == [SettingsReceived(False)]
    (ack,) = peer.output()
    assert "ACK" in ack.flags
    assert not core.closed
    open_request(peer)


def test_enable_push_2_is_protocol_error() -> None:
    _, peer = fresh_server()
    events = peer.send(peer.preface({SettingsFrame.ENABLE_PUSH: 2}))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


@pytest.mark.parametrize("value", [0, 16383, 2**24])
def test_invalid_max_frame_size_setting_is_protocol_error(value: int) -> None:
    _, peer = server_core()
    events = peer.send(peer.settings({SettingsFrame.MAX_FRAME_SIZE: value}))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_initial_window_size_above_max_is_flow_control_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.settings({SettingsFrame.INITIAL_WINDOW_SIZE: 2**31}))
    assert_connection_error(peer, events, ErrorCode.FLOW_CONTROL_ERROR)


# -- frame types ------------------------------------------------------------------------------
def test_unknown_frame_types_are_ignored() -> None:
    core, peer = server_core()
    assert peer.send(peer.unknown(0xFA, 0), peer.unknown(0x20, 7, b"\0" * 100)) == []
    open_request(peer)
    assert peer.send(peer.unknown(0xBE, 1)) == []
    assert peer.send(peer.data(1, b"abc")) == [DataReceived(1, b"abc", False)]
    assert peer.output() == []
    assert not core.closed


def test_priority_frames_are_ignored() -> None:
    core, peer = server_core()
    assert peer.send(peer.priority(1), peer.priority(9, depends_on=1)) == []
    assert peer.output() == []
    open_request(peer, 11)
    assert not core.closed


def test_priority_on_stream_0_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(PRIORITY, 0, 0, b"\0\0\0\x01\x10"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_push_promise_from_a_client_is_protocol_error() -> None:
    _, peer = server_core()
    open_request(peer)
    events = peer.send(raw_frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02" + b"\x82"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_padded_headers_and_data_are_accepted_and_padding_is_credited() -> None:
    core, peer = server_core(H2Config(initial_window_size=65535))
    events = peer.send(peer.headers(1, REQUEST, pad_length=40, priority=True))
    assert events == [RequestReceived(1, REQUEST, False)]
    body = b"m" * 16128
    events = peer.send(peer.data(1, body, pad_length=255))  # a full 16384-byte frame
    assert events == [DataReceived(1, body, False)]
    assert peer.output() == []  # the stream window waits for the application
    core.consumed(1, len(body))
    # the pad length byte and the padding are credited with the body: 16384 >= 65535 // 4, while
    # the body alone (16128) would not reach the threshold
    (update,) = peer.output()
    assert isinstance(update, WindowUpdateFrame)
    assert (update.stream_id, update.window_increment) == (1, 16128 + 1 + 255)


def test_padding_longer_than_the_frame_is_protocol_error() -> None:
    _, peer = server_core()
    open_request(peer)
    events = peer.send(raw_frame(DATA, PADDED, 1, b"\x05abc"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_headers_padding_longer_than_the_frame_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(HEADERS, END_HEADERS | PADDED, 1, b"\x09\x82\x86"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_ping_is_acked_with_the_same_payload() -> None:
    core, peer = server_core()
    assert peer.send(peer.ping(b"\x00\x01\x02\x03\xfc\xfd\xfe\xff")) == []
    (ack,) = peer.output()
    assert isinstance(ack, PingFrame) and "ACK" in ack.flags
    assert bytes(ack.opaque_data) == b"\x00\x01\x02\x03\xfc\xfd\xfe\xff"
    assert core.control_replies == 2  # the SETTINGS ack and this one


def test_ping_ack_from_peer_is_reported() -> None:
    core, peer = server_core()
    core.ping(b"12345678")
    (ping,) = peer.output()
    assert isinstance(ping, PingFrame) and "ACK" not in ping.flags
    assert peer.send(peer.ping(b"12345678", ack=True)) == [PingAcked(b"12345678")]
    assert peer.output() == []  # an ack is not acked


@pytest.mark.parametrize(
    ("stream_id", "payload", "code"),
    [
        (1, b"12345678", PROTOCOL_ERROR),
        (0, b"1234567", ErrorCode.FRAME_SIZE_ERROR),
        (0, b"123456789", ErrorCode.FRAME_SIZE_ERROR),
    ],
)
def test_malformed_ping_is_a_connection_error(stream_id: int, payload: bytes, code: int) -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(PING, 0, stream_id, payload))
    assert_connection_error(peer, events, code)


def test_data_on_stream_0_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(DATA, 0, 0, b"abc"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


@pytest.mark.parametrize("stream_id", [3, 2])
def test_data_on_an_idle_stream_is_protocol_error(stream_id: int) -> None:
    _, peer = server_core()
    open_request(peer, 1)
    events = peer.send(peer.data(stream_id, b"abc"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_headers_on_an_even_stream_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.headers(2, REQUEST))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_headers_on_stream_0_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(HEADERS, END_HEADERS, 0, b"\x82"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_data_after_end_stream_is_stream_closed() -> None:
    core, peer = server_core()
    open_request(peer, 1, end_stream=True)
    events = peer.send(peer.data(1, b"late"))
    assert events == [StreamReset(1, ErrorCode.STREAM_CLOSED, False, "STREAM_CLOSED")]
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and rst.error_code == ErrorCode.STREAM_CLOSED
    assert not core.closed


@pytest.mark.parametrize(
    "interruption",
    [
        ScriptedPeer.ping(),
        ScriptedPeer.data(1, b"x"),
        ScriptedPeer.unknown(0xFA, 0),
        ScriptedPeer.continuation(3, b"\x82"),
        ScriptedPeer.header_block(3, b"\x82\x86\x84"),
    ],
)
def test_header_block_interrupted_is_protocol_error(interruption: bytes) -> None:
    _, peer = server_core()
    block = peer.encode(REQUEST)
    assert peer.send(peer.header_block(1, block[:5], end_headers=False)) == []
    events = peer.send(interruption)
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_continuation_without_headers_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.continuation(1, b"\x82"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


@pytest.mark.parametrize("end_stream", [False, True])
def test_continuation_assembly(end_stream: bool) -> None:
    _, peer = server_core()
    block = peer.encode(REQUEST)
    parts = [block[:3], block[3:4], block[4:9], block[9:]]
    assert peer.send(peer.header_block(1, parts[0], end_stream=end_stream, end_headers=False)) == []
    assert peer.send(peer.continuation(1, parts[1], end_headers=False)) == []
    assert peer.send(peer.continuation(1, b"", end_headers=False)) == []
    assert peer.send(peer.continuation(1, parts[2], end_headers=False)) == []
    events = peer.send(peer.continuation(1, parts[3]))
    assert events == [RequestReceived(1, REQUEST, end_stream)]
    open_request(peer, 3)  # the dynamic table is in step after the assembled block


def test_frame_larger_than_max_frame_size_is_frame_size_error() -> None:
    _, peer = server_core()
    open_request(peer)
    # the header alone is enough: the core does not wait for a payload it would refuse
    events = peer.send(peer.data(1, b"x" * 16385)[:9])
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_frame_of_exactly_max_frame_size_is_accepted() -> None:
    _, peer = server_core()
    open_request(peer)
    assert peer.send(peer.data(1, b"x" * 16384)) == [DataReceived(1, b"x" * 16384, False)]


def test_larger_frames_are_accepted_up_to_our_advertised_max() -> None:
    _, peer = server_core(H2Config(max_frame_size=1 << 16))
    open_request(peer)
    assert peer.send(peer.data(1, b"x" * (1 << 16))) == [DataReceived(1, b"x" * (1 << 16), False)]


# -- WINDOW_UPDATE ----------------------------------------------------------------------------
def test_window_update_of_0_on_a_stream_resets_it() -> None:
    core, peer = server_core()
    open_request(peer)
    events = peer.send(peer.window_update(1, 0))
    assert events == [StreamReset(1, PROTOCOL_ERROR, False, "WINDOW_UPDATE of 0")]
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (1, PROTOCOL_ERROR)
    assert not core.closed


def test_window_update_of_0_on_the_connection_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.window_update(0, 0))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_window_update_with_bad_length_is_frame_size_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_window_update_on_an_idle_stream_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.window_update(5, 100))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_stream_window_overflow_resets_the_stream() -> None:
    core, peer = server_core()
    open_request(peer)
    events = peer.send(peer.window_update(1, 2**31 - 65535))  # 65535 + that > 2**31 - 1
    assert events == [StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "window overflow")]
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and rst.error_code == ErrorCode.FLOW_CONTROL_ERROR
    assert not core.closed


def test_stream_window_up_to_the_maximum_is_fine() -> None:
    _, peer = server_core()
    open_request(peer)
    assert peer.send(peer.window_update(1, 2**31 - 1 - 65535)) == []
    assert peer.output() == []


def test_connection_window_overflow_is_flow_control_error() -> None:
    _, peer = server_core()
    assert peer.send(peer.window_update(0, 2**31 - 1 - 65535)) == []  # exactly the maximum
    events = peer.send(peer.window_update(0, 1))
    assert_connection_error(peer, events, ErrorCode.FLOW_CONTROL_ERROR)


def test_data_beyond_the_stream_window_resets_the_stream() -> None:
    core, peer = server_core(H2Config(initial_window_size=65535, connection_window_size=1 << 20))
    open_request(peer)
    chunk = b"x" * 16384
    for _ in range(3):
        assert peer.send(peer.data(1, chunk)) == [DataReceived(1, chunk, False)]
    assert peer.send(peer.data(1, b"x" * 16383)) == [DataReceived(1, b"x" * 16383, False)]
    events = peer.send(peer.data(1, b"!"))  # 65536 bytes: one beyond the window
    assert events == [StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "FLOW_CONTROL_ERROR")]
    rst = of_type(peer.output(), RstStreamFrame)
    assert [(f.stream_id, f.error_code) for f in rst] == [(1, ErrorCode.FLOW_CONTROL_ERROR)]
    assert not core.closed
    open_request(peer, 3)


def test_data_beyond_the_connection_window_is_flow_control_error() -> None:
    config = H2Config(
        connection_window_size=65535, initial_window_size=1 << 20, max_frame_size=1 << 17
    )
    _, peer = server_core(config)
    open_request(peer)
    events = peer.send(peer.data(1, b"x" * 65536))
    assert_connection_error(peer, events, ErrorCode.FLOW_CONTROL_ERROR)


# -- RST_STREAM and closed streams --------------------------------------------------------------
@pytest.mark.parametrize("stream_id", [1, 2])
def test_rst_stream_on_an_idle_stream_is_protocol_error(stream_id: int) -> None:
    _, peer = server_core()
    events = peer.send(peer.rst_stream(stream_id))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_rst_stream_on_stream_0_is_protocol_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(RST_STREAM, 0, 0, b"\0\0\0\x08"))
    assert_connection_error(peer, events, PROTOCOL_ERROR)


def test_rst_stream_with_bad_length_is_frame_size_error() -> None:
    _, peer = server_core()
    open_request(peer)
    events = peer.send(raw_frame(RST_STREAM, 0, 1, b"\0\0\x08"))
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_rst_stream_from_peer_is_reported() -> None:
    core, peer = server_core()
    open_request(peer)
    assert peer.send(peer.rst_stream(1, ErrorCode.CANCEL)) == [
        StreamReset(1, ErrorCode.CANCEL, True)
    ]
    assert peer.output() == []  # never answer a RST_STREAM with one
    assert core.resets_received == 1
    assert core.open_streams == 1  # until the handler returns
    core.release_stream(1)
    assert core.open_streams == 0
    assert peer.output() == []


def test_frames_on_a_stream_the_server_reset_are_ignored() -> None:
    core, peer = server_core()
    open_request(peer)
    core.reset_stream(1, ErrorCode.INTERNAL_ERROR)
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and rst.error_code == ErrorCode.INTERNAL_ERROR

    def late() -> list[bytes]:  # built per round: the trailers go through the HPACK encoder
        return [
            peer.data(1, b"in flight"),
            peer.window_update(1, 100),
            peer.priority(1),
            peer.headers(1, TRAILERS, end_stream=True),
            peer.rst_stream(1),
        ]

    for frame in late():
        assert peer.send(frame) == []
    core.release_stream(1)
    for frame in late():
        assert peer.send(frame) == []
    assert peer.output() == []
    assert not core.closed
    assert core.resets_received == 0
    open_request(peer, 3)  # the HPACK table followed the ignored trailers


def test_frames_on_a_finished_and_released_stream_are_ignored() -> None:
    core, peer = server_core()
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_headers(1, TRAILERS, end_stream=True)
    core.release_stream(1)
    assert core.open_streams == 0
    peer.output()
    assert peer.send(peer.data(1, b"x"), peer.window_update(1, 5), peer.rst_stream(1)) == []
    assert peer.output() == []
    assert not core.closed


def test_goaway_received_is_reported() -> None:
    core, peer = server_core()
    open_request(peer)
    events = peer.send(peer.goaway(1, ErrorCode.NO_ERROR, b"bye"))
    assert events == [GoAwayReceived(1, ErrorCode.NO_ERROR, b"bye")]
    assert core.goaway_received_last == 1
    assert not core.closed
    assert peer.send(peer.data(1, b"x", end_stream=True)) == [DataReceived(1, b"x", True)]


def test_goaway_too_short_is_frame_size_error() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(GOAWAY, 0, 0, b"\0\0\0\0"))
    assert_connection_error(peer, events, ErrorCode.FRAME_SIZE_ERROR)


def test_full_exchange_on_the_wire() -> None:
    core, peer = server_core()
    request = (peer.headers(1, REQUEST), peer.data(1, b"\0\0\0\0\x02hi", end_stream=True))
    assert peer.send(*request) == [
        RequestReceived(1, REQUEST, False),
        DataReceived(1, b"\0\0\0\0\x02hi", True),
    ]
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"\0\0\0\0\x02ok")
    core.send_headers(1, TRAILERS, end_stream=True)
    headers, data, trailers = peer.output()
    assert isinstance(headers, HeadersFrame) and peer.decode([headers]) == RESPONSE
    assert isinstance(data, DataFrame) and bytes(data.data) == b"\0\0\0\0\x02ok"
    assert isinstance(trailers, HeadersFrame) and "END_STREAM" in trailers.flags
    assert peer.decode([trailers]) == TRAILERS
    core.release_stream(1)
    assert core.open_streams == 0
    assert peer.output() == []  # a finished stream is not reset on release


def test_client_trailers_on_a_request_stream() -> None:
    _, peer = server_core()
    open_request(peer)
    events = peer.send(peer.headers(1, [("x-trailer", "1")], end_stream=True))
    assert events == [TrailersReceived(1, [("x-trailer", "1")])]


def test_hpack_bomb_is_enhance_your_calm() -> None:
    _, peer = server_core(H2Config(max_decoded_header_size=64 << 10))
    block = peer.encode([("x-bomb", "a" * 4000)]) + b"\xbe" * 100
    events = peer.send(peer.header_block(1, block, end_stream=True))
    assert_connection_error(peer, events, ErrorCode.ENHANCE_YOUR_CALM)


def test_invalid_hpack_is_compression_error() -> None:
    _, peer = server_core()
    events = peer.send(peer.header_block(1, b"\x80\x80", end_stream=True))
    assert_connection_error(peer, events, ErrorCode.COMPRESSION_ERROR)


def test_malformed_request_resets_only_that_stream() -> None:
    core, peer = server_core()
    events = peer.send(peer.headers(1, [*REQUEST, ("connection", "close")]))
    assert events == []
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and (rst.stream_id, rst.error_code) == (1, 1)
    assert not core.closed
    open_request(peer, 3)


def test_connection_terminated_carries_the_goaway_debug_text() -> None:
    _, peer = server_core()
    events = peer.send(raw_frame(DATA, 0, 0, b"abc"))
    goaway = assert_connection_error(peer, events, PROTOCOL_ERROR, "DATA on stream 0")
    assert isinstance(goaway, GoAwayFrame)
    assert isinstance(events[-1], ConnectionTerminated)


def test_lowered_header_table_size_is_acknowledged_in_the_next_header_block() -> None:
    """RFC 7541 4.2: when the peer's SETTINGS_HEADER_TABLE_SIZE drops below the encoder's
    table size (4096 initially), the next header block must begin with a dynamic table size
    update no larger than the new value (nghttp2 peers fail the block otherwise)."""
    core, peer = server_core(settings={SettingsFrame.HEADER_TABLE_SIZE: 1024})
    open_request(peer, 1, end_stream=True)
    open_request(peer, 3, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_headers(3, RESPONSE)
    first, second = peer.output()
    assert first.data[0] & 0xE0 == 0x20  # a size update ...
    size, _ = decode_integer(bytes(first.data), 5)
    assert size <= 1024  # ... to at most the new limit
    assert second.data[0] & 0xE0 != 0x20  # once
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 1024
    assert decoder.decode(bytes(first.data)) == RESPONSE
    assert decoder.decode(bytes(second.data)) == RESPONSE


def test_header_table_size_not_lowered_needs_no_update() -> None:
    core, peer = server_core(settings={SettingsFrame.HEADER_TABLE_SIZE: 8192})
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    (headers,) = peer.output()
    assert headers.data[0] & 0xE0 != 0x20
