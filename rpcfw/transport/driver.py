"""What both IO layers share: turning the core's events into stream and owner callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .connection import H2Connection
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
from .frames import ErrorCode
from .keepalive import KeepaliveAction, KeepaliveConfig, keepalive_step
from .stream import Stream, StreamResetError

if TYPE_CHECKING:
    from .aio import ConnectionOwner

__all__ = ["KEEPALIVE_PING", "EventDispatch"]

Headers = list[tuple[str, str]]

#: the payload of keepalive PINGs (their acks are the IO layer's, not the owner's)
KEEPALIVE_PING = b"rpcfwka\x00"


class EventDispatch:
    """Mixin of an IO layer: ``core``, ``owner`` and ``streams`` are the layer's."""

    core: H2Connection
    owner: ConnectionOwner
    streams: dict[int, Stream]
    handshake_done: bool

    def _handshake_completed(self) -> None:
        self.handshake_done = True

    def _keepalive_acked(self) -> None: ...

    def _wake_slots(self) -> None:
        """Wake tasks waiting for a stream slot (the peer's MAX_CONCURRENT_STREAMS)."""

    def write_soon(self) -> None:
        raise NotImplementedError

    # -- shared by both IO layers ------------------------------------------------------------
    _ping_sent_at: float | None
    keepalive_pings_sent: int
    last_read: float

    def close(self, code: int = ErrorCode.NO_ERROR, debug: str = "") -> None:
        raise NotImplementedError

    def _keepalive_due(self, config: KeepaliveConfig, now: float) -> float | None:
        """Apply the keepalive decision for ``now`` (send a PING, or close the connection);
        returns when to ask again, or None once the connection is being closed."""
        action, wake_at = keepalive_step(
            config, now, self.last_read, self._ping_sent_at, bool(self.streams)
        )
        if action is KeepaliveAction.CLOSE:
            self.close(ErrorCode.NO_ERROR, "keepalive ping not acknowledged")
            return None
        if action is KeepaliveAction.SEND_PING:
            self._ping_sent_at = now
            self.keepalive_pings_sent += 1
            self.ping(KEEPALIVE_PING)
        elif self._ping_sent_at is not None and self.last_read >= self._ping_sent_at:
            self._ping_sent_at = None
        return wake_at

    def stream_released(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)
        if self.core.can_open_stream():
            self._wake_slots()
        if not self.streams:
            self.owner.on_idle(self)  # type: ignore[arg-type]

    def open_stream(self, headers: Headers, end_stream: bool = False) -> Stream:
        """Client: start a stream now (StreamLimitError at the peer's limit; see
        ``wait_for_stream_slot``)."""
        stream_id = self.core.open_stream(headers, end_stream)
        stream = Stream(self, stream_id)  # type: ignore[arg-type]
        self.streams[stream_id] = stream
        self.write_soon()
        return stream

    def ping(self, data: bytes) -> None:
        self.core.ping(data)
        self.write_soon()

    def goaway(self, last_stream_id: int, code: int = ErrorCode.NO_ERROR) -> None:
        """A graceful GOAWAY (streams up to ``last_stream_id`` go on)."""
        self.core.goaway(last_stream_id, code)
        self.write_soon()

    def _dispatch(self, events: list[Event]) -> tuple[list[Stream] | None, Any]:
        """Apply ``events``; returns the new request streams (to start after the whole read,
        so a stream reset in the same read costs no handler) and a ConnectionTerminated."""
        new: list[Stream] | None = None
        terminated: ConnectionTerminated | None = None
        conn: Any = self
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.on_data(event.data, event.end_stream)  # type: ignore[attr-defined]
            elif kind is RequestReceived:
                assert isinstance(event, RequestReceived)
                stream = Stream(conn, event.stream_id)
                stream.headers = event.headers
                stream.end_received = event.end_stream
                streams[event.stream_id] = stream
                if new is None:
                    new = []
                new.append(stream)
            elif kind is ResponseReceived:
                assert isinstance(event, ResponseReceived)
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_headers(event.headers, event.end_stream)
            elif kind is TrailersReceived:
                assert isinstance(event, TrailersReceived)
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_trailers(event.headers)
            elif kind is StreamReset:
                assert isinstance(event, StreamReset)
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_error(StreamResetError(event.error_code, event.remote, event.message))
            elif kind is SendReady:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.on_send_ready()
            elif kind is SettingsReceived:
                assert isinstance(event, SettingsReceived)
                if event.first:
                    self._handshake_completed()
            elif kind is PingAcked:
                assert isinstance(event, PingAcked)
                if event.data == KEEPALIVE_PING:
                    self._keepalive_acked()
                else:
                    self.owner.on_ping_ack(conn, event.data)
            elif kind is GoAwayReceived:
                assert isinstance(event, GoAwayReceived)
                self.owner.on_goaway(conn, event.last_stream_id, event.error_code)
            elif kind is ConnectionTerminated:
                assert isinstance(event, ConnectionTerminated)
                terminated = event
        return new, terminated
