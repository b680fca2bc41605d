"""The client core: the peer's stream limit, GOAWAY, response limits and response rules."""

from __future__ import annotations

import pytest
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from rpcfw.transport.config import H2Config
from rpcfw.transport.connection import H2Connection
from rpcfw.transport.events import (
    DataReceived,
    GoAwayReceived,
    ResponseReceived,
    SendReady,
    SettingsReceived,
    StreamReset,
    TrailersReceived,
)
from rpcfw.transport.frames import CONNECTION_PREFACE, ErrorCode
from rpcfw.transport.stream_state import (
    ConnectionClosedError,
    StreamClosedError,
    StreamLimitError,
)

from .peer import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    FakeClock,
    ScriptedPeer,
    assert_connection_error,
    client_core,
    of_type,
    parse_frames,
    raw_frame,
)

MAX_STREAMS = SettingsFrame.MAX_CONCURRENT_STREAMS


def answer(peer: ScriptedPeer, stream_id: int) -> None:
    """The server's whole response: headers, one message, trailers."""
    events = peer.send(
        peer.headers(stream_id, RESPONSE),
        peer.data(stream_id, b"\0\0\0\0\0"),
        peer.headers(stream_id, TRAILERS, end_stream=True),
    )
    assert events == [
        ResponseReceived(stream_id, RESPONSE, False),
        DataReceived(stream_id, b"\0\0\0\0\0", False),
        TrailersReceived(stream_id, TRAILERS),
    ]


def test_client_sends_preface_settings_and_window() -> None:
    core = H2Connection(client=True)
    core.initiate()
    data = core.data_to_send()
    assert data.startswith(CONNECTION_PREFACE)
    settings, window = parse_frames(data)
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingsFrame.ENABLE_PUSH] == 0
    assert isinstance(window, WindowUpdateFrame) and window.stream_id == 0


def test_request_goes_out_with_the_stream_id() -> None:
    core, peer = client_core()
    assert core.open_stream(REQUEST) == 1
    assert core.open_stream(REQUEST, end_stream=True) == 3
    first, second = peer.output()
    assert isinstance(first, HeadersFrame) and first.stream_id == 1
    assert "END_STREAM" not in first.flags
    assert peer.decode([first]) == REQUEST
    assert isinstance(second, HeadersFrame) and "END_STREAM" in second.flags


def test_open_stream_respects_the_peer_max_concurrent_streams() -> None:
    core, peer = client_core(settings={MAX_STREAMS: 2})
    assert core.open_stream(REQUEST, end_stream=True) == 1
    assert core.open_stream(REQUEST, end_stream=True) == 3
    assert not core.can_open_stream()
    with pytest.raises(StreamLimitError):
        core.open_stream(REQUEST)
    peer.output()
    answer(peer, 1)  # stream 1 is closed on both sides: a slot is free
    assert core.can_open_stream()
    assert core.open_stream(REQUEST) == 5
    with pytest.raises(StreamLimitError):
        core.open_stream(REQUEST)


def test_a_reset_stream_frees_its_slot_for_the_client() -> None:
    core, peer = client_core(settings={MAX_STREAMS: 1})
    core.open_stream(REQUEST)
    assert peer.send(peer.rst_stream(1, ErrorCode.REFUSED_STREAM)) == [
        StreamReset(1, ErrorCode.REFUSED_STREAM, True)
    ]
    assert core.open_stream(REQUEST) == 3


def test_max_concurrent_streams_0_allows_no_stream() -> None:
    core, _ = client_core(settings={MAX_STREAMS: 0})
    with pytest.raises(StreamLimitError):
        core.open_stream(REQUEST)


def test_goaway_refuses_streams_above_last_stream_id() -> None:
    core, peer = client_core()
    for _ in range(3):
        core.open_stream(REQUEST)
    peer.output()
    events = peer.send(peer.goaway(1, ErrorCode.NO_ERROR, b"draining"))
    assert events == [
        GoAwayReceived(1, ErrorCode.NO_ERROR, b"draining"),
        StreamReset(3, ErrorCode.REFUSED_STREAM, True, "refused by GOAWAY"),
        StreamReset(5, ErrorCode.REFUSED_STREAM, True, "refused by GOAWAY"),
    ]
    assert peer.output() == []  # the server already forgot them: nothing to reset
    assert not core.can_open_stream()
    with pytest.raises(ConnectionClosedError):
        core.open_stream(REQUEST)
    with pytest.raises(StreamClosedError):
        core.send_data(3, b"x")
    # stream 1 goes on
    core.send_data(1, b"\0\0\0\0\0", end_stream=True)
    answer(peer, 1)
    assert not core.closed


def test_a_second_goaway_cannot_widen() -> None:
    core, peer = client_core()
    for _ in range(3):
        core.open_stream(REQUEST)
    assert peer.send(peer.goaway(3))[1:] == [
        StreamReset(5, ErrorCode.REFUSED_STREAM, True, "refused by GOAWAY")
    ]
    events = peer.send(peer.goaway(2**31 - 1))
    assert events == [GoAwayReceived(3, ErrorCode.NO_ERROR, b"")]
    assert core.goaway_received_last == 3


def test_oversized_response_headers_reset_the_stream() -> None:
    core, peer = client_core(H2Config(max_header_list_size=1024))
    core.open_stream(REQUEST, end_stream=True)
    core.open_stream(REQUEST, end_stream=True)
    peer.output()
    big = [(f"x-meta-{i}", "v" * 300) for i in range(4)]
    events = peer.send(peer.headers(1, [*RESPONSE, *big]))
    assert events == [
        StreamReset(1, ErrorCode.ENHANCE_YOUR_CALM, False, "response metadata too large")
    ]
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame)
    assert (rst.stream_id, rst.error_code) == (1, ErrorCode.ENHANCE_YOUR_CALM)
    assert not core.closed
    # the HPACK table is in step: stream 3's response reuses the entries of the big block
    block = peer.encode([*RESPONSE, big[0]])
    assert len(block) < 10
    events = peer.send(peer.header_block(3, block))
    assert events == [ResponseReceived(3, [*RESPONSE, big[0]], False)]


def test_oversized_trailers_reset_the_stream() -> None:
    core, peer = client_core(H2Config(max_header_list_size=1024))
    core.open_stream(REQUEST, end_stream=True)
    assert peer.send(peer.headers(1, RESPONSE)) == [ResponseReceived(1, RESPONSE, False)]
    events = peer.send(peer.headers(1, [("grpc-message", "m" * 2000)], end_stream=True))
    assert events == [StreamReset(1, ErrorCode.ENHANCE_YOUR_CALM, False, "trailers too large")]


def test_data_before_headers_is_a_stream_error() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST, end_stream=True)
    peer.output()
    events = peer.send(peer.data(1, b"\0\0\0\0\0"))
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False, "DATA before HEADERS")]
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and rst.error_code == ErrorCode.PROTOCOL_ERROR
    assert not core.closed
    assert core.open_stream(REQUEST) == 3


def test_malformed_response_is_a_stream_error() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST, end_stream=True)
    peer.output()
    events = peer.send(peer.headers(1, [("content-type", "application/grpc")]))
    assert len(events) == 1 and isinstance(events[0], StreamReset)
    assert events[0].error_code == ErrorCode.PROTOCOL_ERROR and not events[0].remote


def test_trailers_only_response() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST, end_stream=True)
    headers = [*RESPONSE, ("grpc-status", "12")]
    assert peer.send(peer.headers(1, headers, end_stream=True)) == [
        ResponseReceived(1, headers, True)
    ]
    assert core.open_streams == 1  # until released
    peer.output()
    core.release_stream(1)  # our END_STREAM was sent and theirs received: nothing to reset
    assert core.open_streams == 0
    assert peer.output() == []


def test_informational_response_is_skipped() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST, end_stream=True)
    assert peer.send(peer.headers(1, [(":status", "100")])) == []
    assert peer.send(peer.headers(1, RESPONSE)) == [ResponseReceived(1, RESPONSE, False)]


def test_trailers_without_end_stream_is_a_stream_error() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST, end_stream=True)
    peer.send(peer.headers(1, RESPONSE))
    events = peer.send(peer.headers(1, TRAILERS))
    assert events == [
        StreamReset(1, ErrorCode.PROTOCOL_ERROR, False, "trailers without END_STREAM")
    ]


def test_headers_on_a_server_initiated_stream_is_protocol_error() -> None:
    _, peer = client_core()
    events = peer.send(peer.headers(2, RESPONSE))
    assert_connection_error(peer, events, ErrorCode.PROTOCOL_ERROR)


def test_data_on_a_stream_the_client_has_not_opened_is_protocol_error() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST)
    events = peer.send(peer.data(3, b"x"))
    assert_connection_error(peer, events, ErrorCode.PROTOCOL_ERROR)


def test_push_promise_is_protocol_error() -> None:
    core, peer = client_core()
    core.open_stream(REQUEST)
    events = peer.send(raw_frame(0x5, 0x4, 1, b"\0\0\0\x02\x82"))
    assert_connection_error(peer, events, ErrorCode.PROTOCOL_ERROR)


def test_enable_push_1_from_a_server_is_protocol_error() -> None:
    core = H2Connection(client=True)
    core.initiate()
    peer = ScriptedPeer(core)
    peer.output()
    events = peer.send(peer.settings({SettingsFrame.ENABLE_PUSH: 1}))
    assert_connection_error(peer, events, ErrorCode.PROTOCOL_ERROR)


def test_server_first_frame_must_be_settings() -> None:
    core = H2Connection(client=True)
    core.initiate()
    peer = ScriptedPeer(core)
    peer.output()
    events = peer.send(peer.ping())
    assert_connection_error(peer, events, ErrorCode.PROTOCOL_ERROR)


def test_client_pings_are_not_policed() -> None:
    clock = FakeClock()
    core, peer = client_core(clock=clock)
    for _ in range(50):
        assert peer.send(peer.ping()) == []
    assert len(peer.output()) == 50
    assert not core.closed


def test_release_resets_an_unfinished_stream() -> None:
    core, peer = client_core(settings={MAX_STREAMS: 1})
    core.open_stream(REQUEST)
    peer.output()
    core.release_stream(1)
    (rst,) = peer.output()
    assert isinstance(rst, RstStreamFrame) and rst.error_code == ErrorCode.CANCEL
    assert core.open_streams == 0
    assert core.open_stream(REQUEST) == 3
    # the response to the cancelled stream still arrives: ignored
    assert peer.send(peer.headers(1, RESPONSE), peer.data(1, b"x")) == []


def test_client_flow_control_on_a_response() -> None:
    core, peer = client_core(H2Config(initial_window_size=65535))
    core.open_stream(REQUEST, end_stream=True)
    peer.output()
    peer.send(peer.headers(1, RESPONSE))
    for _ in range(4):
        peer.send(peer.data(1, b"d" * 16383))
    core.consumed(1, 16383)
    (update,) = peer.output()
    assert (update.stream_id, update.window_increment) == (1, 16383)
    for size in (16383, 3):  # the 16386 left of the window
        assert peer.send(peer.data(1, b"d" * size)) == [DataReceived(1, b"d" * size, False)]
    events = peer.send(peer.data(1, b"d"))
    assert events == [StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "FLOW_CONTROL_ERROR")]


def test_client_request_body_waits_for_the_server_window() -> None:
    core, peer = client_core(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 10})
    core.open_stream(REQUEST)
    core.send_data(1, b"0123456789abc", end_stream=True)
    frames = peer.output()
    (data,) = of_type(frames, DataFrame)
    assert bytes(data.data) == b"0123456789" and "END_STREAM" not in data.flags
    assert core.local_ended(1)
    assert core.pending_bytes(1) == 3
    assert peer.send(peer.window_update(1, 3)) == [SendReady(1)]
    (data,) = peer.output()
    assert bytes(data.data) == b"abc" and "END_STREAM" in data.flags


def test_settings_received_is_reported_once_as_first() -> None:
    core = H2Connection(client=True)
    core.initiate()
    peer = ScriptedPeer(core)
    peer.output()
    assert peer.send(peer.settings()) == [SettingsReceived(True)]
    assert peer.send(peer.settings()) == [SettingsReceived(False)]


def test_client_acknowledges_a_lowered_header_table_size() -> None:
    core, peer = client_core(settings={SettingsFrame.HEADER_TABLE_SIZE: 0})
    core.open_stream(REQUEST)
    core.open_stream(REQUEST)
    first, second = peer.output()
    assert bytes(first.data[:1]) == b"\x20"  # dynamic table size update to 0, RFC 7541 4.2
    assert bytes(second.data[:1]) != b"\x20"
    assert peer.decode([first]) == REQUEST
    assert peer.decode([second]) == REQUEST
