"""The sans-IO HTTP/2 connection core: bytes in -> events, calls -> bytes out.

No sockets, no tasks, no clock of its own (``clock`` is injected): the asyncio and anyio layers
drive it, and tests drive it with scripted frames. It owns the stream state machine, both
flow-control directions, SETTINGS, PING (with keepalive enforcement), GOAWAY and every limit in
``H2Config``. Frames on streams it no longer tracks are ignored (their DATA still credits the
connection window), so nothing is kept per closed stream.

A stream error resets that stream (RST_STREAM); a connection error queues GOAWAY with the code
and a debug text, reports ``ConnectionTerminated`` and ignores all later input.
"""

from __future__ import annotations

from .core_state import OVERSIZED_METADATA_RESPONSE
from .frames import (
    CONNECTION_PREFACE,
    DEFAULT_WINDOW,
    MAX_STREAM_ID,
    MAX_WINDOW,
    ErrorCode,
    SettingCode,
    data_frame,
    goaway_frame,
    ping_frame,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)
from .inbound import InboundFrames
from .stream_state import (
    ConnectionClosedError,
    StreamClosedError,
    StreamLimitError,
    StreamState,
)

__all__ = ["H2Connection", "OVERSIZED_METADATA_RESPONSE"]

Headers = list[tuple[str, str]]


class H2Connection(InboundFrames):
    """One HTTP/2 connection, client or server side (``client``): the application's calls."""

    # -- setup and output ----------------------------------------------------------------
    def initiate(self) -> None:
        """Queue the connection preface (client) and our SETTINGS and window."""
        cfg = self.config
        settings = [
            (SettingCode.HEADER_TABLE_SIZE, cfg.header_table_size),
            (SettingCode.ENABLE_PUSH, 0),
            (SettingCode.MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams),
            (SettingCode.INITIAL_WINDOW_SIZE, cfg.initial_window_size),
            (SettingCode.MAX_FRAME_SIZE, cfg.max_frame_size),
            (SettingCode.MAX_HEADER_LIST_SIZE, cfg.max_header_list_size),
        ]
        if self.client:
            self._out.append(CONNECTION_PREFACE)
        self._out.append(settings_frame(settings))
        if cfg.connection_window_size > DEFAULT_WINDOW:
            self._out.append(window_update_frame(0, cfg.connection_window_size - DEFAULT_WINDOW))

    def data_to_send(self) -> bytes:
        """All bytes queued since the last call (empty when there are none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def backlog(self) -> bool:
        """Complete frames are buffered that ``receive`` has not processed yet."""
        buf = self._buf
        if len(buf) < 9 or self.closed:
            return False
        high, low = buf[0], int.from_bytes(buf[1:3], "big")
        return len(buf) >= 9 + ((high << 16) | low)

    @property
    def queued_frames(self) -> int:
        """Chunks of output waiting for ``data_to_send()`` (roughly frames)."""
        return len(self._out)

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    @property
    def open_streams(self) -> int:
        """Streams the application still holds (on a server: handlers not yet returned)."""
        return len(self._streams)

    def stream_ids(self) -> list[int]:
        return list(self._streams)

    def pending_bytes(self, stream_id: int) -> int:
        """Body bytes of this stream waiting for flow-control window."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else stream.pending_bytes + (stream.pending_trailers is not None)

    def local_ended(self, stream_id: int) -> bool:
        """This side of the stream has ended (END_STREAM queued or sent, or reset) or is gone."""
        stream = self._streams.get(stream_id)
        return stream is None or stream.end_queued or stream.local_closed

    def response_started(self, stream_id: int) -> bool:
        """Server: response headers went out on this stream."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.response_started

    def can_open_stream(self) -> bool:
        return (
            not self.closed
            and self.goaway_received_last is None
            and self._open_local < self.peer_max_concurrent_streams
            and self._next_stream_id <= MAX_STREAM_ID
        )

    # -- application calls ---------------------------------------------------------------
    def open_stream(self, headers: Headers, end_stream: bool = False) -> int:
        """Client: start a stream with ``headers``; returns its id."""
        if self.closed or self.goaway_received_last is not None:
            raise ConnectionClosedError("connection is closed or draining")
        if self._next_stream_id > MAX_STREAM_ID:
            raise ConnectionClosedError("connection ran out of stream ids")
        if self._open_local >= self.peer_max_concurrent_streams:
            raise StreamLimitError("peer's MAX_CONCURRENT_STREAMS reached")
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = StreamState(stream_id, self._peer_initial_window, self.config.initial_window_size)
        self._streams[stream_id] = stream
        self._open_local += 1
        block = self._encoder.encode(headers)
        self._headers_out(stream_id, block, end_stream)
        if end_stream:
            stream.local_closed = stream.end_queued = True
        return stream_id

    def _writable(self, stream_id: int) -> StreamState:
        if self.closed:
            raise ConnectionClosedError("connection is closed")
        stream = self._streams.get(stream_id)
        if stream is None or stream.end_queued or stream.local_closed:
            raise StreamClosedError(f"stream {stream_id} is closed for sending")
        return stream

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        """Response headers, or (``end_stream``) trailers; trailers wait behind queued data."""
        self.send_header_block(stream_id, self._encoder.encode(headers), end_stream)

    def send_header_block(self, stream_id: int, block: bytes, end_stream: bool = False) -> None:
        """``send_headers`` with a block already encoded by ``HeaderEncoder`` (it uses no
        connection state, so a constant block can be encoded once for every connection)."""
        stream = self._writable(stream_id)
        self.ping_strikes = 0
        stream.response_started = True
        if end_stream:
            stream.end_queued = True
            if stream.pending:
                stream.pending_trailers = block
                return
        self._headers_out(stream_id, block, end_stream)
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Body bytes; what the windows do not allow now is queued and sent as they open
        (``pending_bytes``, and ``SendReady`` once it is all out)."""
        stream = self._writable(stream_id)
        self.ping_strikes = 0
        if end_stream:
            stream.end_queued = True
        if stream.pending:
            stream.pending.append((data, end_stream))
            stream.pending_bytes += len(data)
            return
        size = len(data)
        window = min(self._conn_send_window, stream.send_window)
        # the common case: one frame (an empty one needs no window, RFC 9113 6.9.1)
        if (size <= window or not size) and size <= self._peer_max_frame_size:
            self._conn_send_window -= size
            stream.send_window -= size
            self._out.append(data_frame(stream_id, data, end_stream))
            if end_stream:
                self._local_end(stream)
            return
        stream.pending.append((data, end_stream))
        stream.pending_bytes += size
        self._flush_stream(stream)

    def reset_stream(self, stream_id: int, code: int = ErrorCode.CANCEL) -> None:
        """RST_STREAM; the stream sends and accepts nothing more."""
        stream = self._streams.get(stream_id)
        if stream is None or self.closed or stream.closed:
            return
        self._out.append(rst_stream_frame(stream_id, code))
        self._mark_reset(stream)

    def consumed(self, stream_id: int, size: int) -> None:
        """The application has read ``size`` body bytes of this stream: credit its window."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed or self.closed:
            return
        if stream.recv_delta:
            taken = min(stream.recv_delta, size)
            stream.recv_delta -= taken
            size -= taken
        stream.recv_unacked += size
        if stream.recv_unacked >= self.config.initial_window_size >> 2:
            self._out.append(window_update_frame(stream_id, stream.recv_unacked))
            stream.recv_window += stream.recv_unacked
            stream.recv_unacked = 0

    def expect(self, stream_id: int, size: int) -> None:
        """A reader waits for ``size`` more bytes than it has: make sure the window lets the
        peer send them (a message larger than the stream window must not stall)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed or self.closed:
            return
        size = min(size, MAX_WINDOW)  # a larger window is a FLOW_CONTROL_ERROR for the peer
        if stream.recv_window < size:
            increment = size - stream.recv_window
            stream.recv_window += increment
            stream.recv_delta += increment
            self._out.append(window_update_frame(stream_id, increment))

    def release_stream(self, stream_id: int) -> None:
        """The application is done with the stream (a server's handler returned). A stream not
        yet closed is reset with CANCEL."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if not stream.closed and not self.closed:
            self._out.append(rst_stream_frame(stream_id, ErrorCode.CANCEL))
            self._mark_reset(stream)
        stream.released = True
        if self.closed:  # nothing more can happen on it
            self._streams.pop(stream_id, None)
            self._blocked.pop(stream_id, None)
        else:
            self._forget_if_done(stream)

    def ping(self, data: bytes) -> None:
        if not self.closed:
            self._out.append(ping_frame(data))

    def goaway(
        self, last_stream_id: int, code: int = ErrorCode.NO_ERROR, debug: bytes = b""
    ) -> None:
        """Graceful GOAWAY: streams above ``last_stream_id`` are refused from now on; those at
        or below it go on. Send it again with a lower id to narrow it."""
        if self.closed:
            return
        if self.goaway_sent_last is not None:
            last_stream_id = min(last_stream_id, self.goaway_sent_last)
        self.goaway_sent_last = last_stream_id
        self._out.append(goaway_frame(last_stream_id, code, debug))
