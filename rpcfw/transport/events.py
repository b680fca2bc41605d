"""What the connection core reports after reading bytes: one small object per event."""

from __future__ import annotations

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "GoAwayReceived",
    "PingAcked",
    "RequestReceived",
    "ResponseReceived",
    "SendReady",
    "SettingsReceived",
    "StreamReset",
    "TrailersReceived",
]

Headers = list[tuple[str, str]]


class Event:
    """Base of the events the connection core reports; compared and shown by their fields."""

    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = self.__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        names: tuple[str, ...] = self.__slots__
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in names
        )

    __hash__ = None  # type: ignore[assignment]


class RequestReceived(Event):
    """Server: a new stream with valid request headers (``end_stream``: no body follows)."""

    __slots__ = ("end_stream", "headers", "stream_id")

    def __init__(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream


class ResponseReceived(Event):
    """Client: the response headers of a stream (``end_stream``: a trailers-only response)."""

    __slots__ = ("end_stream", "headers", "stream_id")

    def __init__(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream


class TrailersReceived(Event):
    """The trailing header block; the peer's side of the stream is done."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers


class DataReceived(Event):
    """Body bytes; the application credits them back with ``consumed()`` once it has read them."""

    __slots__ = ("data", "end_stream", "stream_id")

    def __init__(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.end_stream = end_stream


class StreamReset(Event):
    """The stream ended abnormally: reset by the peer (``remote``), refused by a GOAWAY, or
    reset by the core for a stream error (``message`` says why)."""

    __slots__ = ("error_code", "message", "remote", "stream_id")

    def __init__(self, stream_id: int, error_code: int, remote: bool, message: str = "") -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote
        self.message = message


class SendReady(Event):
    """Everything queued on this stream for lack of flow-control window has been sent."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class SettingsReceived(Event):
    """The peer's SETTINGS were applied (``first``: its first SETTINGS, the end of the
    handshake)."""

    __slots__ = ("first",)

    def __init__(self, first: bool) -> None:
        self.first = first


class PingAcked(Event):
    """The peer acknowledged our PING carrying ``data``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class GoAwayReceived(Event):
    """No new streams; streams up to ``last_stream_id`` may finish."""

    __slots__ = ("debug", "error_code", "last_stream_id")

    def __init__(self, last_stream_id: int, error_code: int, debug: bytes) -> None:
        self.last_stream_id = last_stream_id
        self.error_code = error_code
        self.debug = debug


class ConnectionTerminated(Event):
    """The core ended the connection for a connection error: the GOAWAY saying so is queued
    in ``data_to_send()``; write it, then close the socket."""

    __slots__ = ("debug", "error_code")

    def __init__(self, error_code: int, debug: str) -> None:
        self.error_code = error_code
        self.debug = debug
