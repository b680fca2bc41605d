"""Reading frames: the receive loop and one handler per frame type (RFC 9113 section 6), with
the header-block, reset-budget and PING-policy rules that go with them."""

from __future__ import annotations

import time
from collections.abc import Callable

from .config import H2Config
from .core_state import ProtocolViolation
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    GoAwayReceived,
    PingAcked,
    SendReady,
    SettingsReceived,
    StreamReset,
)
from .frames import (
    CONNECTION_PREFACE,
    DEFAULT_MAX_FRAME_SIZE,
    FLAG_ACK,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FRAME_HEADER,
    MAX_FRAME_SIZE_LIMIT,
    MAX_STREAM_ID,
    MAX_WINDOW,
    ErrorCode,
    FrameType,
    SettingCode,
    ping_frame,
    settings_ack_frame,
    window_update_frame,
)
from .inbound_headers import HeaderFrames

__all__ = ["InboundFrames"]

Headers = list[tuple[str, str]]

_UNPACK_HEADER = FRAME_HEADER.unpack_from
_NO_CALLS_PING_INTERVAL = 2 * 60 * 60.0  # gRPC: keepalive without calls is at most every 2 h


class InboundFrames(HeaderFrames):
    """Turns the peer's bytes into state changes, replies and events."""

    def __init__(
        self,
        config: H2Config | None = None,
        *,
        client: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, client=client, clock=clock)
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
                        raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid preface")
                    self._buf = buf
                    return events
                if not buf.startswith(CONNECTION_PREFACE):
                    raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid connection preface")
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
                    raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "frame exceeds max size")
                end = offset + 9 + length
                if end > size:
                    break
                payload = buf[offset + 9 : end]
                offset = end
                self._frame(frame_type, flags, stream_id & MAX_STREAM_ID, payload, events)
            self._buf = buf[offset:] if offset < size else b""
        except ProtocolViolation as exc:
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
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "header block interrupted")
        if not self._settings_seen and frame_type != FrameType.SETTINGS:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "first frame must be SETTINGS")
        handler = self._handlers.get(frame_type)
        if handler is not None:
            handler(flags, stream_id, payload, events)

    def _on_priority(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            self._stream_error_by_id(stream_id, ErrorCode.FRAME_SIZE_ERROR, events)

    def _on_push_promise(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE not allowed")

    # frames ------------------------------------------------------------------------------
    def _on_data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        flow = len(payload)
        self._conn_recv_window -= flow
        if self._conn_recv_window < 0:
            raise ProtocolViolation(ErrorCode.FLOW_CONTROL_ERROR, "connection window exceeded")
        self._conn_recv_unacked += flow
        if self._conn_recv_unacked >= self.config.connection_window_size >> 2:
            self._out.append(window_update_frame(0, self._conn_recv_unacked))
            self._conn_recv_window += self._conn_recv_unacked
            self._conn_recv_unacked = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we closed: ignore
        if stream.remote_closed:
            if not stream.local_closed:
                self._stream_error(stream, ErrorCode.STREAM_CLOSED, events)
            return
        if flags & FLAG_PADDED:
            if not payload or payload[0] >= len(payload):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid padding")
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
        end_stream = bool(flags & FLAG_END_STREAM)
        if payload or end_stream:
            events.append(DataReceived(stream_id, payload, end_stream))
        if end_stream:
            self._remote_end(stream)

    def _on_rst_stream(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM length must be 4")
        if stream_id == 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
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
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "too_many_resets")

    def _on_settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & FLAG_ACK:
            if payload:
                raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with payload")
            if not self._settings_seen:
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "first frame must be SETTINGS")
            return
        if len(payload) % 6:
            raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "bad SETTINGS length")
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
                raise ProtocolViolation(ErrorCode.FLOW_CONTROL_ERROR, "window too large")
            delta = value - self._peer_initial_window
            self._peer_initial_window = value
            if delta:
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise ProtocolViolation(ErrorCode.FLOW_CONTROL_ERROR, "window overflow")
                if delta > 0:
                    self._flush_blocked(events)
        elif code == SettingCode.MAX_FRAME_SIZE:
            if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid MAX_FRAME_SIZE")
            self._peer_max_frame_size = value
        elif code == SettingCode.ENABLE_PUSH:
            if value > 1 or (self.client and value):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid ENABLE_PUSH")
        elif code == SettingCode.MAX_HEADER_LIST_SIZE:
            self.peer_max_header_list_size = value
        elif code == SettingCode.HEADER_TABLE_SIZE and value < self._encoder_table_size:
            # our encoder never uses the dynamic table, but a lowered limit must still be
            # acknowledged by a size update in the next block: declare 0, once and for all
            self._encoder_table_size = 0
            self._table_size_update = b"\x20"

    def _on_window_update(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE length must be 4")
        increment = int.from_bytes(payload, "big") & MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._conn_send_window += increment
            if self._conn_send_window > MAX_WINDOW:
                raise ProtocolViolation(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._flush_blocked(events)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._is_idle(stream_id):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
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
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "PING length must be 8")
        if flags & FLAG_ACK:
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
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "too_many_pings")

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise ProtocolViolation(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY too short")
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
