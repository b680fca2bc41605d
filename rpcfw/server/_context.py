"""CallContext: what a server method sees of its call, and the response half of the stream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn, Protocol

from google.protobuf.message import Message as ProtobufMessage

from .._rich_status import RichStatus
from .._status import Status
from .._wire import GRPC_CONTENT_TYPE, frame_message, frame_message_async, trailers_for
from ..compression import Compression, accepts, encoding_name
from ..errors import RpcError
from ..interceptors.base import ServerCallStats
from ..metadata import Metadata, MetadataLike, decode_metadata, encode_metadata
from ..tls import PeerIdentity
from ..transport.hpack_codec import HeaderEncoder

if TYPE_CHECKING:
    from .._guard import Guard
    from ..transport import Stream


class ServedConnection(Protocol):
    """What a call needs of the connection it arrived on (either IO layer)."""

    peer: str
    peer_identity: object | None  # a PeerIdentity on TLS connections with a client certificate

    def clock(self) -> float:
        """Now, on the clock deadlines are measured with (the event loop's)."""
        ...


__all__ = ["RESPONSE_HEADERS", "CallContext", "ServedConnection"]

RESPONSE_HEADERS = [(":status", "200"), ("content-type", GRPC_CONTENT_TYPE)]
# the blocks nearly every unary answer sends, encoded once (the encoder is stateless)
_RESPONSE_BLOCK = HeaderEncoder().encode(RESPONSE_HEADERS)
_OK_TRAILERS_BLOCK = HeaderEncoder().encode(trailers_for(Status.OK, None))


class CallContext:
    """Per-call information and controls for server methods.

    - ``method``: the full method path, e.g. ``/echo.v1.Echo/Unary``
    - ``invocation_metadata``: the client's metadata
    - ``peer``: ``host:port`` of the client (over a Unix socket ``unix:``, the client's
      socket having no name, or ``unix:/path`` / ``unix-abstract:name``)
    - ``peer_identity``: the client certificate's subject and SANs (``rpcfw.PeerIdentity``)
      on a TLS connection where the client presented a verified one, else None
    - ``deadline``: absolute event-loop time of the call's deadline, or None
    """

    __slots__ = (
        "_clock",
        "_compression",
        "_guard",
        "_headers_sent",
        "_initial",
        "_max_send",
        "_metadata",
        "_stream",
        "_trailing",
        "cancelled",
        "deadline",
        "finished",
        "method",
        "peer",
        "peer_identity",
        "stats",
        "status",
        "status_message",
        "user_agent",
    )

    def __init__(
        self,
        conn: ServedConnection,
        stream: Stream,
        method: str,
        deadline: float | None,
        user_agent: str | None,
        max_send: int | None,
        compression: str | None = None,
        guard: Guard | None = None,
    ) -> None:
        self._stream = stream
        self._guard = guard
        self._compression = compression  # grpc-encoding of the response messages
        self._max_send = max_send
        self._headers_sent = False
        self._initial: list[tuple[str, str]] = []
        self._trailing: list[tuple[str, str]] = []
        self.method = method
        self._metadata: Metadata | None = None
        self.deadline = deadline
        self.user_agent = user_agent
        self.cancelled = False
        self.finished = False  # the status went out
        self.peer = conn.peer
        identity = conn.peer_identity
        #: the client's verified certificate (mTLS), or None: authorize on it
        self.peer_identity = identity if isinstance(identity, PeerIdentity) else None
        self._clock = conn.clock
        #: the status sent (None while the call runs, or when the client went away first)
        self.status: Status | None = None
        self.status_message: str | None = None
        #: durations and message counts, kept when the server has interceptors
        self.stats: ServerCallStats | None = None

    @property
    def invocation_metadata(self) -> Metadata:
        """The client's metadata (decoded on first use; an interceptor may replace it)."""
        if self._metadata is None:
            self._metadata = decode_metadata(self._stream.headers or ())
        return self._metadata

    @invocation_metadata.setter
    def invocation_metadata(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def set_deadline(self, timeout: float) -> None:
        """Shorten the call's deadline to ``timeout`` seconds from now (never lengthens it);
        the handler is then cancelled with DEADLINE_EXCEEDED at the new deadline."""
        when = self._clock() + timeout
        if self.deadline is not None and when >= self.deadline:
            return
        self.deadline = when
        if self._guard is not None:
            self._guard.set_deadline(when, RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded"))

    def time_remaining(self) -> float | None:
        """Seconds left until the deadline (never negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._clock())

    def set_initial_metadata(self, metadata: MetadataLike) -> None:
        """Metadata to send with the response headers (before the first message)."""
        if self._headers_sent:
            raise RuntimeError("response headers were already sent")
        self._initial = encode_metadata(metadata)

    async def send_initial_metadata(self, metadata: MetadataLike | None = None) -> None:
        """Send the response headers now (with ``metadata``)."""
        if metadata is not None:
            self.set_initial_metadata(metadata)
        if not self._headers_sent:
            self._headers_sent = True
            self._stream.send_headers(self._response_headers())

    def set_compression(self, compression: Compression | str | None) -> None:
        """Compress this call's response messages with ``compression`` (gzip, deflate) if the
        client accepts it, or not at all (None); before the response headers are sent."""
        if self._headers_sent:
            raise RuntimeError("response headers were already sent")
        name = encoding_name(compression)
        if name is None or accepts(self._header("grpc-accept-encoding"), name):
            self._compression = name

    @property
    def compression(self) -> str | None:
        """The ``grpc-encoding`` of the response messages (None: uncompressed)."""
        return self._compression

    def _header(self, name: str) -> str | None:
        for key, value in self._stream.headers or ():
            if key == name:
                return value
        return None

    def _response_headers(self) -> list[tuple[str, str]]:
        if self._compression is None:
            return RESPONSE_HEADERS + self._initial
        return [*RESPONSE_HEADERS, ("grpc-encoding", self._compression), *self._initial]

    def set_trailing_metadata(self, metadata: MetadataLike) -> None:
        """Metadata to send with the status at the end of the call."""
        self._trailing = encode_metadata(metadata)

    def abort(
        self,
        status: Status,
        message: str | None = None,
        *,
        details: RichStatus | Iterable[ProtobufMessage] | None = None,
    ) -> NoReturn:
        """End the call now with ``status`` (raises RpcError, which the server turns into
        the response status). ``details``: a rich status for ``grpc-status-details-bin``,
        a ``RichStatus`` or protobuf messages (packed into ``Any``; see ``RpcError``)."""
        if status is Status.OK:
            raise ValueError("abort() needs an error status")
        raise RpcError(status, message, details=details)

    # -- used by the dispatcher ----------------------------------------------------------
    async def send_message(self, payload: bytes) -> None:
        """Send one already-serialized response message: frames it (compressed if the call's
        compression is set) and sends the initial metadata first if they have not gone yet."""
        if not self._headers_sent:
            await self.send_initial_metadata()
        framed = (
            frame_message(payload, self._max_send)
            if self._compression is None
            else await frame_message_async(payload, self._max_send, self._compression)
        )
        await self._stream.send_data(framed)

    async def send_status(
        self, status: Status, message: str | None, extra: list[tuple[str, str]] | None = None
    ) -> None:
        """The trailers (or a trailers-only response); returns once flow control let them out."""
        trailing = self._trailing + extra if extra else self._trailing
        trailers = trailers_for(status, message, trailing)
        stream = self._stream
        self.finished = True
        self.status, self.status_message = status, message
        if not self._headers_sent:
            self._headers_sent = True
            if not self._initial:  # trailers-only response
                stream.send_headers(RESPONSE_HEADERS + trailers, end_stream=True)
                if stream.needs_drain:
                    await stream.drain()
                return
            # initial metadata the handler set is not dropped (grpc-go and grpc-core send it too)
            stream.send_headers(self._response_headers())
        stream.send_headers(trailers, end_stream=True)
        if stream.needs_drain:
            await stream.drain()

    def status_nowait(self, status: Status, message: str | None) -> None:
        """The status now, without waiting for flow control (best effort: nothing is sent
        when the stream or connection is already gone)."""
        trailers = trailers_for(status, message, self._trailing)
        if not self._headers_sent:
            self._headers_sent = True
            trailers = RESPONSE_HEADERS + self._initial + trailers
        self.finished = True
        self.status, self.status_message = status, message
        with contextlib.suppress(Exception):
            self._stream.send_headers(trailers, end_stream=True)

    async def send_unary(self, payload: bytes) -> None:
        """Headers, message and OK trailers queued together: one socket write."""
        framed = (
            frame_message(payload, self._max_send)
            if self._compression is None
            else await frame_message_async(payload, self._max_send, self._compression)
        )
        stream = self._stream
        if not self._headers_sent:
            self._headers_sent = True
            if self._initial or self._compression is not None:
                stream.send_headers(self._response_headers())
            else:
                stream.send_header_block(_RESPONSE_BLOCK)
        stream.send_data_nowait(framed)
        self.finished = True
        self.status = Status.OK
        if self._trailing:
            stream.send_headers(trailers_for(Status.OK, None, self._trailing), end_stream=True)
        else:
            stream.send_header_block(_OK_TRAILERS_BLOCK, end_stream=True)
        if stream.needs_drain:
            await stream.drain()

    @property
    def headers_sent(self) -> bool:
        """Whether the response headers (initial metadata) have been sent."""
        return self._headers_sent
