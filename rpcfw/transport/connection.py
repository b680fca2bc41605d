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

import time
from collections.abc import Callable

from .config import H2Config
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAcked,
    RequestReceived,
    ResponseReceived,
    SendReady,
    SettingsReceived,
    StreamReset,
    TrailersReceived,
)
from .frames import (
    CONNECTION_PREFACE,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_WINDOW,
    FRAME_HEADER,
    MAX_FRAME_SIZE_LIMIT,
    MAX_STREAM_ID,
    MAX_WINDOW,
    ErrorCode,
    Flag,
    FrameType,
    SettingCode,
    data_frame,
    goaway_frame,
    headers_frames,
    ping_frame,
    rst_stream_frame,
    settings_ack_frame,
    settings_frame,
    window_update_frame,
)
from .hpack_codec import HeaderEncoder
from .hpack_decoder import DecodedBlock, HeaderBlockError, HeaderBlockTooLarge, HeaderDecoder
from .stream_state import (
    ConnectionClosedError,
    StreamClosedError,
    StreamLimitError,
    StreamState,
)
from .validation import validate_request, validate_response, validate_trailers

__all__ = ["H2Connection", "OVERSIZED_METADATA_RESPONSE"]

Headers = list[tuple[str, str]]

_UNPACK_HEADER = FRAME_HEADER.unpack_from
# plain ints: IntFlag arithmetic costs an enum round trip per frame
_END_STREAM = _ACK = int(Flag.END_STREAM)
_END_HEADERS = int(Flag.END_HEADERS)
_PADDED = int(Flag.PADDED)
_PRIORITY = int(Flag.PRIORITY)
_NO_CALLS_PING_INTERVAL = 2 * 60 * 60.0  # gRPC: keepalive without calls is at most every 2 h
#: the trailers-only answer to a request whose metadata exceeds max_header_list_size
OVERSIZED_METADATA_RESPONSE: Headers = [
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-status", "8"),  # RESOURCE_EXHAUSTED
    ("grpc-message", "request metadata exceeds the server's max header list size"),
]


class _ConnectionError(Exception):
    def __init__(self, code: ErrorCode, debug: str) -> None:
        self.code = code
        self.debug = debug


class H2Connection:
    """One HTTP/2 connection, client or server side (``client``)."""

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
        self._handlers: dict[int, Callable[[int, int, bytes, list[Event]], None]] = {
            FrameType.DATA: self._on_data,
            FrameType.HEADERS: self._on_headers,
            FrameType.PRIORITY: self._on_priority,
            FrameType.RST_STREAM: self._on_rst_stream,
            FrameType.SETTINGS: self._on_settings,
            FrameType.PUSH_PROMISE: self._on_push_promise,
            FrameType.PING: self._on_ping,
            FrameType.GOAWAY: self._on_goaway,
            FrameType.WINDOW_UPDATE: self._on_window_update,
            FrameType.CONTINUATION: self._on_continuation,
        }
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

    def _headers_out(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        if self._table_size_update:
            block = self._table_size_update + block
            self._table_size_update = b""
        self._out.append(headers_frames(stream_id, block, end_stream, self._peer_max_frame_size))

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

    def close(self, code: int = ErrorCode.NO_ERROR, debug: str = "") -> None:
        """End the connection now: GOAWAY with ``code`` (when not closed already)."""
        if not self.closed:
            self.closed = True
            last = self.highest_inbound_stream_id
            if self.goaway_sent_last is not None:  # a later GOAWAY must not raise it (6.8)
                last = min(last, self.goaway_sent_last)
            self._out.append(goaway_frame(last, code, debug.encode()))

    # -- receiving -------------------------------------------------------------------------
    def receive(self, data: bytes, max_frames: int | None = None) -> list[Event]:
        """Feed bytes read from the peer; returns what happened. Never raises for bad input.

        With ``max_frames``, at most that many frames are processed; the rest stays buffered
        (``backlog``) until the next call, so the IO layer can let other connections run
        between slices of a huge read (50,000 SETTINGS frames in one read, say)."""
        if self.closed:
            return []
        events: list[Event] = []
        buf = self._buf + data if self._buf else data
        try:
            offset = 0
            if self._preface_pending:
                if len(buf) < len(CONNECTION_PREFACE):
                    if not CONNECTION_PREFACE.startswith(buf):
                        raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid preface")
                    self._buf = buf
                    return events
                if not buf.startswith(CONNECTION_PREFACE):
                    raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid connection preface")
                self._preface_pending = False
                offset = len(CONNECTION_PREFACE)
            size = len(buf)
            max_frame = self.config.max_frame_size
            budget = -1 if max_frames is None else max_frames
            while size - offset >= 9 and budget:
                budget -= 1
                high, low, frame_type, flags, stream_id = _UNPACK_HEADER(buf, offset)
                length = (high << 16) | low
                if length > max_frame:
                    raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "frame exceeds max size")
                end = offset + 9 + length
                if end > size:
                    break
                payload = buf[offset + 9 : end]
                offset = end
                self._frame(frame_type, flags, stream_id & MAX_STREAM_ID, payload, events)
            self._buf = buf[offset:] if offset < size else b""
        except _ConnectionError as exc:
            self._fail(exc.code, exc.debug, events)
        return events

    def _fail(self, code: ErrorCode, debug: str, events: list[Event]) -> None:
        self.close(code, debug)
        self._buf = b""
        events.append(ConnectionTerminated(code, debug))

    def _frame(
        self, frame_type: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if self._hb_stream and (
            frame_type != FrameType.CONTINUATION or stream_id != self._hb_stream
        ):
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "header block interrupted")
        if not self._settings_seen and frame_type != FrameType.SETTINGS:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "first frame must be SETTINGS")
        handler = self._handlers.get(frame_type)
        if handler is not None:
            handler(flags, stream_id, payload, events)
        # unknown frame types are ignored (RFC 9113 4.1)

    def _on_priority(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            self._stream_error_by_id(stream_id, ErrorCode.FRAME_SIZE_ERROR, events)

    def _on_push_promise(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE not allowed")

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

    # frames ------------------------------------------------------------------------------
    def _on_data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        flow = len(payload)
        self._conn_recv_window -= flow
        if self._conn_recv_window < 0:
            raise _ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded")
        self._conn_recv_unacked += flow
        if self._conn_recv_unacked >= self.config.connection_window_size >> 2:
            self._out.append(window_update_frame(0, self._conn_recv_unacked))
            self._conn_recv_window += self._conn_recv_unacked
            self._conn_recv_unacked = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we closed: ignore
        if stream.remote_closed:
            if not stream.local_closed:
                self._stream_error(stream, ErrorCode.STREAM_CLOSED, events)
            return
        if flags & _PADDED:
            if not payload or payload[0] >= len(payload):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid padding")
            pad = payload[0]
            payload = payload[1 : len(payload) - pad]
        stream.recv_window -= flow
        if stream.recv_window < 0:
            self._stream_error(stream, ErrorCode.FLOW_CONTROL_ERROR, events)
            return
        if self.client and not stream.headers_received:
            self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, "DATA before HEADERS")
            return
        padding = flow - len(payload)
        if padding:  # padding is nobody's to read: credit it now
            stream.recv_unacked += padding
        end_stream = bool(flags & _END_STREAM)
        if payload or end_stream:
            events.append(DataReceived(stream_id, payload, end_stream))
        if end_stream:
            self._remote_end(stream)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & (_PADDED | _PRIORITY):
            start = 0
            pad = 0
            if flags & _PADDED:
                if not payload:
                    raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid padding")
                pad = payload[0]
                start = 1
            if flags & _PRIORITY:
                start += 5
            if start + pad > len(payload):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid padding")
            payload = payload[start : len(payload) - pad]
        if len(payload) > self.config.max_header_block_size:  # frames may be larger than it
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        end_stream = bool(flags & _END_STREAM)
        if flags & _END_HEADERS:
            self._header_block(stream_id, self._decode(payload), end_stream, events)
            return
        # a block in several frames is decoded as it arrives: nothing but an unfinished field
        # is buffered, and values too large to keep are skipped (see HeaderDecoder.feed)
        self._hb_stream = stream_id
        self._hb_end_stream = end_stream
        self._hb_size = len(payload)
        self._hb_frames = 0
        self._decoder.begin_block(self.config.max_header_list_size)
        self._feed(payload)

    def _on_continuation(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if not self._hb_stream:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        self._hb_size += len(payload)
        self._hb_frames += 1
        if self._hb_size > self.config.max_header_block_size:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        if self._hb_frames > self.config.max_continuation_frames:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
        self._feed(payload)
        if flags & _END_HEADERS:
            self._hb_stream = 0
            try:
                decoded = self._decoder.end_block()
            except HeaderBlockError as exc:
                raise _ConnectionError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None
            self._header_block(stream_id, decoded, self._hb_end_stream, events)

    def _decode(self, block: bytes) -> DecodedBlock:
        try:  # always decode: the HPACK table must stay in step even for refused streams
            return self._decoder.decode_block(block)
        except HeaderBlockTooLarge:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large") from None
        except HeaderBlockError as exc:
            raise _ConnectionError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None

    def _feed(self, fragment: bytes) -> None:
        try:
            self._decoder.feed(fragment)
        except HeaderBlockTooLarge:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large") from None
        except HeaderBlockError as exc:
            raise _ConnectionError(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None

    def _header_block(
        self, stream_id: int, decoded: DecodedBlock, end_stream: bool, events: list[Event]
    ) -> None:
        headers = decoded.headers
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self.client and stream_id % 2 and stream_id > self.highest_inbound_stream_id:
                self._new_request(stream_id, decoded, end_stream, events)
                return
            if self._is_idle(stream_id):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on an idle stream")
            return  # a stream we closed: ignore
        if stream.remote_closed:
            if not stream.local_closed:
                self._stream_error(stream, ErrorCode.STREAM_CLOSED, events)
            return
        oversized = decoded.size > self.config.max_header_list_size
        if self.client and not stream.headers_received:
            if oversized:
                self._stream_error(
                    stream, ErrorCode.ENHANCE_YOUR_CALM, events, "response metadata too large"
                )
                return
            problem = validate_response(headers)
            if problem is not None:
                self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, problem)
                return
            if headers[0][1].startswith("1") and not end_stream:
                return  # informational response: ignored
            stream.headers_received = True
            events.append(ResponseReceived(stream_id, headers.copy(), end_stream))
            if end_stream:
                self._remote_end(stream)
            return
        # trailers
        if not end_stream:
            self._stream_error(
                stream, ErrorCode.PROTOCOL_ERROR, events, "trailers without END_STREAM"
            )
            return
        if oversized:
            self._stream_error(stream, ErrorCode.ENHANCE_YOUR_CALM, events, "trailers too large")
            return
        problem = validate_trailers(headers)
        if problem is not None:
            self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, problem)
            return
        events.append(TrailersReceived(stream_id, headers.copy()))
        self._remote_end(stream)

    def _new_request(
        self, stream_id: int, decoded: DecodedBlock, end_stream: bool, events: list[Event]
    ) -> None:
        self.highest_inbound_stream_id = stream_id
        cfg = self.config
        if self.goaway_sent_last is not None and stream_id > self.goaway_sent_last:
            self._refuse(stream_id)
            return
        if len(self._streams) >= cfg.max_concurrent_streams:
            self._refuse(stream_id)
            return
        if decoded.size > cfg.max_header_list_size:
            block = self._encoder.encode(OVERSIZED_METADATA_RESPONSE)
            self._headers_out(stream_id, block, True)
            if not end_stream:
                self._out.append(rst_stream_frame(stream_id, ErrorCode.NO_ERROR))
            return
        problem = decoded.verdict  # a block seen before was validated then
        if problem is None:
            problem = decoded.verdict = validate_request(decoded.headers) or ""
        if problem:
            self._out.append(rst_stream_frame(stream_id, ErrorCode.PROTOCOL_ERROR))
            return
        stream = StreamState(stream_id, self._peer_initial_window, cfg.initial_window_size)
        stream.headers_received = True
        stream.remote_closed = end_stream
        self._streams[stream_id] = stream
        # a copy: the decoder hands the same list out again for the same block
        events.append(RequestReceived(stream_id, decoded.headers.copy(), end_stream))

    def _refuse(self, stream_id: int) -> None:
        self.streams_refused += 1
        self._out.append(rst_stream_frame(stream_id, ErrorCode.REFUSED_STREAM))

    def _on_rst_stream(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM length must be 4")
        if stream_id == 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            return
        if stream.closed:
            return
        code = int.from_bytes(payload, "big")
        if not self.client and not stream.local_closed:
            self._count_reset()
        self._mark_reset(stream)
        events.append(StreamReset(stream_id, code, True))

    def _count_reset(self) -> None:
        """Token bucket over resets of unfinished streams (Rapid Reset, CVE-2023-44487)."""
        self.resets_received += 1
        now = self._clock()
        cfg = self.config
        self._reset_tokens = min(
            float(cfg.max_reset_burst),
            self._reset_tokens + (now - self._reset_refill_at) * cfg.max_resets_per_second,
        )
        self._reset_refill_at = now
        self._reset_tokens -= 1
        if self._reset_tokens < 0:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too_many_resets")

    def _on_settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & _ACK:
            if payload:
                raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with payload")
            if not self._settings_seen:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "first frame must be SETTINGS")
            return
        if len(payload) % 6:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "bad SETTINGS length")
        for offset in range(0, len(payload), 6):
            code = int.from_bytes(payload[offset : offset + 2], "big")
            value = int.from_bytes(payload[offset + 2 : offset + 6], "big")
            self._apply_setting(code, value, events)
        self._out.append(settings_ack_frame())
        self.control_replies += 1
        first = not self._settings_seen
        self._settings_seen = True
        events.append(SettingsReceived(first))

    def _apply_setting(self, code: int, value: int, events: list[Event]) -> None:
        if code == SettingCode.MAX_CONCURRENT_STREAMS:
            self.peer_max_concurrent_streams = value
        elif code == SettingCode.INITIAL_WINDOW_SIZE:
            if value > MAX_WINDOW:
                raise _ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window too large")
            delta = value - self._peer_initial_window
            self._peer_initial_window = value
            if delta:
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise _ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window overflow")
                if delta > 0:
                    self._flush_blocked(events)
        elif code == SettingCode.MAX_FRAME_SIZE:
            if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid MAX_FRAME_SIZE")
            self._peer_max_frame_size = value
        elif code == SettingCode.ENABLE_PUSH:
            if value > 1 or (self.client and value):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "invalid ENABLE_PUSH")
        elif code == SettingCode.MAX_HEADER_LIST_SIZE:
            self.peer_max_header_list_size = value
        elif code == SettingCode.HEADER_TABLE_SIZE and value < self._encoder_table_size:
            # our encoder never uses the dynamic table, but a lowered limit must still be
            # acknowledged by a size update in the next block: declare 0, once and for all
            self._encoder_table_size = 0
            self._table_size_update = b"\x20"
        # HEADER_TABLE_SIZE not lowered, unknown settings: ignored

    def _on_window_update(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE length must be 4")
        increment = int.from_bytes(payload, "big") & MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._conn_send_window += increment
            if self._conn_send_window > MAX_WINDOW:
                raise _ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._flush_blocked(events)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return
        if stream.local_closed:
            return
        if increment == 0:
            self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, "WINDOW_UPDATE of 0")
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream, ErrorCode.FLOW_CONTROL_ERROR, events, "window overflow")
            return
        if (stream.pending or stream.pending_trailers is not None) and self._flush_stream(stream):
            events.append(SendReady(stream_id))

    def _on_ping(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING length must be 8")
        if flags & _ACK:
            events.append(PingAcked(payload))
            return
        if not self.client:
            self._check_ping_policy()
        self._out.append(ping_frame(payload, ack=True))
        self.control_replies += 1

    def _check_ping_policy(self) -> None:
        """gRPC keepalive enforcement: too frequent PINGs are strikes; too many strikes end the
        connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings". Strikes are forgiven
        whenever the server sends headers or data."""
        cfg = self.config
        now = self._clock()
        if not self._streams and not cfg.permit_pings_without_calls:
            interval = _NO_CALLS_PING_INTERVAL
        else:
            interval = cfg.min_ping_interval
        if self._last_ping_at is not None and now - self._last_ping_at < interval:
            self.ping_strikes += 1
        self._last_ping_at = now
        if self.ping_strikes > cfg.max_ping_strikes:
            raise _ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "too_many_pings")

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise _ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY too short")
        last = int.from_bytes(payload[:4], "big") & MAX_STREAM_ID
        code = int.from_bytes(payload[4:8], "big")
        if self.goaway_received_last is not None:
            last = min(last, self.goaway_received_last)
        self.goaway_received_last = last
        events.append(GoAwayReceived(last, code, payload[8:]))
        if self.client:
            for stream in list(self._streams.values()):
                if stream.id > last and not stream.closed:
                    self._mark_reset(stream)
                    events.append(
                        StreamReset(stream.id, ErrorCode.REFUSED_STREAM, True, "refused by GOAWAY")
                    )

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
