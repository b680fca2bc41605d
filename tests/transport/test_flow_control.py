"""Flow control in both directions on a server core (the client core shares the code)."""

from __future__ import annotations

from hyperframe.frame import DataFrame, Frame, HeadersFrame, SettingsFrame, WindowUpdateFrame

from rpcfw.transport.config import H2Config
from rpcfw.transport.events import DataReceived, RequestReceived, SendReady, StreamReset
from rpcfw.transport.frames import ErrorCode

from .peer import REQUEST, RESPONSE, TRAILERS, ScriptedPeer, client_core, of_type, server_core

CHUNK = b"d" * 16384


def open_request(peer: ScriptedPeer, stream_id: int = 1, end_stream: bool = False) -> None:
    events = peer.send(peer.headers(stream_id, REQUEST, end_stream=end_stream))
    assert events == [RequestReceived(stream_id, REQUEST, end_stream)]


def updates(frames: list[Frame], stream_id: int) -> list[int]:
    frames = of_type(frames, WindowUpdateFrame)
    return [f.window_increment for f in frames if f.stream_id == stream_id]


def data_sizes(frames: list[Frame], stream_id: int = 1) -> list[int]:
    return [len(f.data) for f in of_type(frames, DataFrame) if f.stream_id == stream_id]


# -- receive side ---------------------------------------------------------------------------------
def test_connection_window_is_credited_on_receipt() -> None:
    config = H2Config(connection_window_size=1 << 20, initial_window_size=1 << 20)
    core, peer = server_core(config)
    open_request(peer)
    quarter = (1 << 20) // 4
    for _ in range(quarter // len(CHUNK) - 1):
        assert peer.send(peer.data(1, CHUNK)) == [DataReceived(1, CHUNK, False)]
    assert peer.output() == []  # below a quarter: nothing yet
    assert peer.send(peer.data(1, CHUNK)) == [DataReceived(1, CHUNK, False)]
    frames = peer.output()  # a quarter has arrived, nothing consumed
    assert updates(frames, 0) == [quarter]
    assert updates(frames, 1) == []  # the stream window waits for the reader
    assert core._conn_recv_window == 1 << 20


def test_connection_window_is_credited_for_data_on_closed_streams() -> None:
    config = H2Config(connection_window_size=65535, initial_window_size=65535)
    core, peer = server_core(config)
    open_request(peer)
    core.reset_stream(1)
    peer.output()
    total = 0
    for _ in range(8):  # far more than the connection window, all of it on a reset stream
        assert peer.send(peer.data(1, CHUNK)) == []
        total += len(CHUNK)
    frames = peer.output()
    assert sum(updates(frames, 0)) == total
    assert not core.closed


def test_stream_window_is_credited_only_on_consumed() -> None:
    config = H2Config(initial_window_size=65535, connection_window_size=1 << 20)
    core, peer = server_core(config)
    open_request(peer)
    for _ in range(3):
        peer.send(peer.data(1, CHUNK))
    assert updates(peer.output(), 1) == []
    core.consumed(1, 16000)
    assert peer.output() == []  # below a quarter of the stream window
    core.consumed(1, 383)  # 16383 == 65535 // 4
    assert updates(peer.output(), 1) == [16383]
    core.consumed(1, 100)
    assert peer.output() == []
    # 49152 received, 16383 credited: the window is 32766, and not a byte more
    for _ in range(2):
        assert peer.send(peer.data(1, b"x" * 16383)) == [DataReceived(1, b"x" * 16383, False)]
    events = peer.send(peer.data(1, b"x"))
    assert events == [StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "FLOW_CONTROL_ERROR")]


def fill_stream_window(peer: ScriptedPeer, window: int = 65535) -> None:
    while window:
        size = min(window, len(CHUNK))
        assert peer.send(peer.data(1, b"d" * size)) == [DataReceived(1, b"d" * size, False)]
        window -= size


def test_expect_grants_exactly_the_window_a_large_message_needs() -> None:
    config = H2Config(initial_window_size=65535, connection_window_size=1 << 20)
    core, peer = server_core(config)
    open_request(peer)
    message = 100_000
    fill_stream_window(peer)  # 65535 of the message arrived; the reader holds them unconsumed
    peer.output()
    core.expect(1, message - 65535)
    assert updates(peer.output(), 1) == [message - 65535]
    core.expect(1, message - 65535)  # asking again grants nothing more
    assert peer.output() == []
    fill_stream_window(peer, message - 65535)
    assert peer.send(peer.data(1, b"x")) == [
        StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "FLOW_CONTROL_ERROR")
    ]


def test_expect_extra_window_is_not_credited_twice() -> None:
    config = H2Config(initial_window_size=65535, connection_window_size=1 << 20)
    core, peer = server_core(config)
    open_request(peer)
    message = 100_000
    fill_stream_window(peer)
    core.expect(1, message - 65535)
    fill_stream_window(peer, message - 65535)
    peer.output()
    core.consumed(1, message)  # the reader takes the whole message
    # only the initial window is restored: the 34465 granted by expect are not credited again
    assert updates(peer.output(), 1) == [65535]
    fill_stream_window(peer, 65535)
    assert peer.send(peer.data(1, b"x")) == [
        StreamReset(1, ErrorCode.FLOW_CONTROL_ERROR, False, "FLOW_CONTROL_ERROR")
    ]


def test_expect_within_the_window_grants_nothing() -> None:
    core, peer = server_core(H2Config(initial_window_size=65535))
    open_request(peer)
    core.expect(1, 65535)
    assert peer.output() == []


def test_no_window_update_after_the_stream_ended() -> None:
    core, peer = server_core(H2Config(initial_window_size=65535))
    open_request(peer)
    peer.send(peer.data(1, CHUNK, end_stream=True))
    core.consumed(1, len(CHUNK))
    core.expect(1, 1 << 20)
    assert peer.output() == []


# -- send side ---------------------------------------------------------------------------------
def test_send_data_beyond_the_peer_window_is_queued_and_released_by_window_update() -> None:
    core, peer = server_core()  # the peer's windows: 65535 for the connection and the stream
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 100_000)
    frames = peer.output()
    assert data_sizes(frames) == [16384, 16384, 16384, 16383]
    assert core.pending_bytes(1) == 100_000 - 65535
    assert peer.send(peer.window_update(1, 50_000)) == []  # the connection window is still 0
    assert peer.output() == []
    assert peer.send(peer.window_update(0, 20_000)) == []  # 20000 of 34465: not all out yet
    assert data_sizes(peer.output()) == [16384, 3616]
    assert core.pending_bytes(1) == 100_000 - 65535 - 20_000
    assert peer.send(peer.window_update(0, 20_000)) == [SendReady(1)]
    assert data_sizes(peer.output()) == [100_000 - 65535 - 20_000]
    assert core.pending_bytes(1) == 0


def test_trailers_wait_behind_pending_data() -> None:
    core, peer = server_core()
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 70_000)
    core.send_headers(1, TRAILERS, end_stream=True)
    frames = peer.output()
    assert sum(data_sizes(frames)) == 65535
    assert not [f for f in of_type(frames, HeadersFrame) if "END_STREAM" in f.flags]
    assert core.pending_bytes(1) == 70_000 - 65535 + 1  # the trailers count as one
    assert core.local_ended(1)
    assert peer.send(peer.window_update(0, 10_000), peer.window_update(1, 10_000)) == [SendReady(1)]
    data, trailers = peer.output()
    assert isinstance(data, DataFrame) and len(data.data) == 70_000 - 65535
    assert "END_STREAM" not in data.flags
    assert isinstance(trailers, HeadersFrame) and "END_STREAM" in trailers.flags
    assert peer.decode([trailers]) == TRAILERS
    assert core.pending_bytes(1) == 0
    core.release_stream(1)
    assert peer.output() == []  # closed: nothing to reset
    assert core.open_streams == 0


def test_end_stream_data_behind_pending_data_keeps_its_flag() -> None:
    core, peer = server_core()
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 65535)
    core.send_data(1, b"b" * 10, end_stream=True)
    peer.output()
    assert core.pending_bytes(1) == 10
    assert peer.send(peer.window_update(0, 100), peer.window_update(1, 100)) == [SendReady(1)]
    (data,) = peer.output()
    assert bytes(data.data) == b"b" * 10 and "END_STREAM" in data.flags


def test_peer_initial_window_size_change_adjusts_open_streams() -> None:
    core, peer = server_core(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 100})
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 250)
    assert data_sizes(peer.output()) == [100]
    assert core.pending_bytes(1) == 150
    # shrink: the window goes negative (100 - 100 - 50), nothing is sent
    peer.send(peer.settings({SettingsFrame.INITIAL_WINDOW_SIZE: 50}))
    assert data_sizes(peer.output()) == []
    # grow by 250: the window is 200, of which the 150 pending go out
    events = peer.send(peer.settings({SettingsFrame.INITIAL_WINDOW_SIZE: 300}))
    assert SendReady(1) in events
    assert data_sizes(peer.output()) == [150]
    assert core.pending_bytes(1) == 0
    # the new initial size applies to streams opened later
    open_request(peer, 3, end_stream=True)
    core.send_headers(3, RESPONSE)
    core.send_data(3, b"c" * 301)
    assert data_sizes(peer.output(), 3) == [300]


def test_initial_window_change_that_overflows_a_stream_is_flow_control_error() -> None:
    core, peer = server_core()
    open_request(peer)
    peer.send(peer.window_update(1, 2**31 - 1 - 65535))
    events = peer.send(peer.settings({SettingsFrame.INITIAL_WINDOW_SIZE: 65536}))
    assert events and events[-1].error_code == ErrorCode.FLOW_CONTROL_ERROR  # type: ignore[attr-defined]
    assert core.closed


def test_data_is_split_at_the_peer_max_frame_size() -> None:
    core, peer = server_core(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20})
    peer.send(peer.window_update(0, 1 << 20))
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 40_000, end_stream=True)
    frames = peer.output()
    assert data_sizes(frames) == [16384, 16384, 7232]
    assert ["END_STREAM" in f.flags for f in of_type(frames, DataFrame)] == [False, False, True]
    assert core.pending_bytes(1) == 0


def test_data_is_split_at_a_larger_peer_max_frame_size() -> None:
    settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20, SettingsFrame.MAX_FRAME_SIZE: 20_000}
    core, peer = server_core(settings=settings)
    peer.send(peer.window_update(0, 1 << 20))
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 50_000)
    assert data_sizes(peer.output()) == [20_000, 20_000, 10_000]


def test_blocked_streams_are_served_in_order_as_the_connection_window_opens() -> None:
    core, peer = server_core(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 1 << 20})
    for stream_id in (1, 3):
        open_request(peer, stream_id, end_stream=True)
        core.send_headers(stream_id, RESPONSE)
    core.send_data(1, b"a" * 65535)
    core.send_data(3, b"b" * 1000)
    core.send_data(1, b"c" * 500)
    peer.output()
    assert (core.pending_bytes(1), core.pending_bytes(3)) == (500, 1000)
    # stream 3 was blocked first
    assert peer.send(peer.window_update(0, 1500)) == [SendReady(3), SendReady(1)]
    frames = peer.output()
    assert [(f.stream_id, len(f.data)) for f in of_type(frames, DataFrame)] == [(3, 1000), (1, 500)]


def test_reset_drops_queued_output() -> None:
    core, peer = server_core()
    open_request(peer, 1, end_stream=True)
    core.send_headers(1, RESPONSE)
    core.send_data(1, b"a" * 100_000)
    core.send_headers(1, TRAILERS, end_stream=True)
    peer.output()
    assert peer.send(peer.rst_stream(1)) == [StreamReset(1, ErrorCode.CANCEL, True)]
    assert core.pending_bytes(1) == 0
    assert core._blocked == {}
    assert peer.send(peer.window_update(0, 100_000)) == []
    assert peer.output() == []


def test_empty_end_stream_data_is_not_held_back_by_a_negative_window() -> None:
    """RFC 9113 6.9.1: an empty DATA frame with END_STREAM needs no window. Queued behind
    nothing, it must not wait while ``pending_bytes`` reports nothing left to send."""
    core, peer = client_core(settings={SettingsFrame.INITIAL_WINDOW_SIZE: 100})
    core.open_stream(REQUEST)
    core.send_data(1, b"q" * 100)  # the stream window is now 0
    peer.send(peer.settings({SettingsFrame.INITIAL_WINDOW_SIZE: 0}))  # and now -100
    peer.output()
    core.send_data(1, b"", end_stream=True)
    (data,) = of_type(peer.output(), DataFrame)
    assert bytes(data.data) == b"" and "END_STREAM" in data.flags
    assert core.pending_bytes(1) == 0
    assert core._blocked == {}


def test_expect_never_opens_the_window_beyond_its_maximum() -> None:
    """A window above 2**31 - 1 is a FLOW_CONTROL_ERROR for the peer (RFC 9113 6.9.1), and a
    WINDOW_UPDATE increment has 31 bits: a huge expected message cannot ask for more."""
    core, peer = server_core()
    open_request(peer)
    core.expect(1, 2**31 + 5)
    assert updates(peer.output(), 1) == [2**31 - 1 - (1 << 20)]
    core.expect(1, 2**33)  # asking for more than fits in a WINDOW_UPDATE: nothing to add
    assert peer.output() == []
