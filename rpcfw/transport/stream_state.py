"""The core's record of one open stream: both halves, both flow-control windows, queued output."""

from __future__ import annotations

from collections import deque

__all__ = [
    "StreamState",
    "TransportError",
    "StreamClosedError",
    "ConnectionClosedError",
    "StreamLimitError",
]


class TransportError(Exception):
    """A request the connection core cannot carry out."""


class StreamClosedError(TransportError):
    """The stream is reset or this side of it has ended."""


class ConnectionClosedError(TransportError):
    """The connection is closed, or draining (GOAWAY) and takes no new streams."""


class StreamLimitError(TransportError):
    """The peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached: wait for a stream to close."""


class StreamState:
    """Receive window accounting follows grpc-go: ``recv_window`` is what the peer may still
    send; bytes the application has read but not yet announced wait in ``recv_unacked``; a
    reader that needs a message larger than the window gets extra window, ``recv_delta``, that
    is not credited again when those bytes are read."""

    __slots__ = (
        "end_queued",
        "headers_received",
        "id",
        "local_closed",
        "pending",
        "pending_bytes",
        "pending_trailers",
        "recv_delta",
        "recv_unacked",
        "recv_window",
        "released",
        "remote_closed",
        "response_started",
        "send_window",
    )

    def __init__(self, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_unacked = 0
        self.recv_delta = 0
        self.local_closed = False  # END_STREAM or RST_STREAM written
        self.remote_closed = False  # END_STREAM or RST_STREAM received
        self.end_queued = False  # END_STREAM queued behind data waiting for window
        self.headers_received = False
        self.response_started = False  # server: response HEADERS sent
        self.released = False  # the application is done with it
        self.pending: deque[tuple[bytes, bool]] = deque()
        self.pending_bytes = 0
        self.pending_trailers: bytes | None = None

    @property
    def closed(self) -> bool:
        return self.local_closed and self.remote_closed

    def __repr__(self) -> str:
        return (
            f"<StreamState {self.id} local_closed={self.local_closed} "
            f"remote_closed={self.remote_closed} pending={self.pending_bytes}>"
        )
