"""The connection core's state and the bookkeeping every part of it shares: streams opening
and closing, stream errors, and sending queued output as flow-control windows open.

``H2Connection`` (connection.py) is the public face; ``InboundFrames`` (inbound.py) reads
frames; this base holds what both change.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .config import H2Config
from .events import (
    Event,
    SendReady,
    StreamReset,
)
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    MAX_STREAM_ID,
    ErrorCode,
    data_frame,
    goaway_frame,
    headers_frames,
    rst_stream_frame,
)
from .hpack_codec import HeaderEncoder
from .hpack_decoder import HeaderDecoder
from .stream_state import (
    StreamState,
)

__all__ = ["OVERSIZED_METADATA_RESPONSE", "CoreState", "ProtocolViolation"]

Headers = list[tuple[str, str]]

#: the trailers-only answer to a request whose metadata exceeds max_header_list_size
OVERSIZED_METADATA_RESPONSE: Headers = [
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-status", "8"),  # RESOURCE_EXHAUSTED
    ("grpc-message", "request metadata exceeds the server's max header list size"),
]


class ProtocolViolation(Exception):
    """A connection error found while reading: GOAWAY with ``code`` and ``debug``."""

    def __init__(self, code: ErrorCode, debug: str) -> None:
        self.code = code
        self.debug = debug


class CoreState:
    """State of one HTTP/2 connection, client or server side (``client``)."""

    def __init__(
        self,
        config: H2Config | None = None,
        *,
        client: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config = config or H2Config()
        self.client = client
        self._clock = clock
        self._out: list[bytes] = []
        self._buf = b""
        self._preface_pending = not client
        self._settings_seen = False
        self.closed = False
        self._streams: dict[int, StreamState] = {}
        self._blocked: dict[int, None] = {}  # streams with output waiting for window, in order
        self._open_local = 0  # client: our streams not yet closed (the peer's limit counts them)
        self._next_stream_id = 1
        self.highest_inbound_stream_id = 0
        self._encoder = HeaderEncoder()
        self._decoder = HeaderDecoder(config.header_table_size, config.max_decoded_header_size)
        self._hb_stream = 0  # header block being assembled (HEADERS + CONTINUATION)
        self._hb_end_stream = False
        self._hb_size = 0
        self._hb_frames = 0
        # peer settings
        self.peer_max_concurrent_streams = MAX_STREAM_ID
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame_size = DEFAULT_MAX_FRAME_SIZE
        self.peer_max_header_list_size: int | None = None
        #: RFC 7541 4.2: the peer lowered SETTINGS_HEADER_TABLE_SIZE below our encoder's table
        #: size (4096 at first): the next header block starts with this size update (to 0)
        self._encoder_table_size = 4096
        self._table_size_update = b""
        # windows
        self._conn_send_window = DEFAULT_WINDOW
        self._conn_recv_window = config.connection_window_size
        self._conn_recv_unacked = 0
        # GOAWAY
        self.goaway_sent_last: int | None = None
        self.goaway_received_last: int | None = None
        # abuse accounting (server)
        self._reset_tokens = float(config.max_reset_burst)
        self._reset_refill_at = clock()
        self._last_ping_at: float | None = None
        self.ping_strikes = 0
        #: counters for tests and metrics
        self.resets_received = 0
        self.streams_refused = 0
        self.control_replies = 0

    # stream bookkeeping ------------------------------------------------------------------
    def _is_idle(self, stream_id: int) -> bool:
        """A stream id the peer could not have used yet."""
        if self.client:
            return stream_id % 2 == 0 or stream_id >= self._next_stream_id
        return stream_id % 2 == 0 or stream_id > self.highest_inbound_stream_id

    def _local_end(self, stream: StreamState) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._closed(stream)

    def _remote_end(self, stream: StreamState) -> None:
        stream.remote_closed = True
        if stream.local_closed:
            self._closed(stream)

    def _mark_reset(self, stream: StreamState) -> None:
        stream.pending.clear()
        stream.pending_bytes = 0
        stream.pending_trailers = None
        self._blocked.pop(stream.id, None)
        was_closed = stream.closed
        stream.local_closed = stream.remote_closed = stream.end_queued = True
        if not was_closed:
            self._closed(stream)

    def _closed(self, stream: StreamState) -> None:
        if self.client:
            self._open_local -= 1
        self._forget_if_done(stream)

    def _forget_if_done(self, stream: StreamState) -> None:
        if stream.released and stream.closed:
            self._streams.pop(stream.id, None)

    def _stream_error(
        self, stream: StreamState, code: ErrorCode, events: list[Event], message: str = ""
    ) -> None:
        self._out.append(rst_stream_frame(stream.id, code))
        self._mark_reset(stream)
        events.append(StreamReset(stream.id, code, False, message or code.name))

    def _stream_error_by_id(self, stream_id: int, code: ErrorCode, events: list[Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.closed:
            self._stream_error(stream, code, events)
        elif stream is None and not self._is_idle(stream_id):  # never RST an idle stream
            self._out.append(rst_stream_frame(stream_id, code))

    def _headers_out(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        if self._table_size_update:
            block = self._table_size_update + block
            self._table_size_update = b""
        self._out.append(headers_frames(stream_id, block, end_stream, self._peer_max_frame_size))

    # flow control (send) -----------------------------------------------------------------
    def _flush_blocked(self, events: list[Event]) -> None:
        for stream_id in list(self._blocked):
            stream = self._streams.get(stream_id)
            if stream is None:
                self._blocked.pop(stream_id, None)
            elif self._flush_stream(stream):
                events.append(SendReady(stream_id))
            if self._conn_send_window <= 0:
                break

    def _flush_stream(self, stream: StreamState) -> bool:
        """Send what the windows allow; True once nothing is left queued."""
        pending = stream.pending
        max_frame = self._peer_max_frame_size
        while pending:
            window = min(self._conn_send_window, stream.send_window)
            data, end_stream = pending[0]
            if data and len(data) > window:  # an empty frame needs no window
                if window <= 0:
                    break
                chunk = data[: min(window, max_frame)]
                pending[0] = (data[len(chunk) :], end_stream)
                end_stream = False
            elif len(data) > max_frame:
                chunk = data[:max_frame]
                pending[0] = (data[max_frame:], end_stream)
                end_stream = False
            else:
                chunk = data
                pending.popleft()
            size = len(chunk)
            self._conn_send_window -= size
            stream.send_window -= size
            stream.pending_bytes -= size
            self._out.append(data_frame(stream.id, chunk, end_stream))
            if end_stream:
                self._local_end(stream)
        if pending:
            self._blocked[stream.id] = None
            return False
        self._blocked.pop(stream.id, None)
        if stream.pending_trailers is not None:
            block, stream.pending_trailers = stream.pending_trailers, None
            self._headers_out(stream.id, block, True)
            self._local_end(stream)
        return True

    def close(self, code: int = ErrorCode.NO_ERROR, debug: str = "") -> None:
        """End the connection now: GOAWAY with ``code`` (when not closed already)."""
        if not self.closed:
            self.closed = True
            last = self.highest_inbound_stream_id
            if self.goaway_sent_last is not None:  # a later GOAWAY must not raise it (6.8)
                last = min(last, self.goaway_sent_last)
            self._out.append(goaway_frame(last, code, debug.encode()))
