"""ClientCall: the client side of one RPC on one HTTP/2 stream, with gRPC semantics.

Status truth: whatever the server sent before its stream ended (response headers, messages,
trailers) is read and reported even if a RST_STREAM followed in the same read, and a server
that answers before the client half-closed (an error status, then RST_STREAM NO_ERROR) is
reported with that status, not as a failed send. Reads are cancel-safe: a ``recv()`` cancelled
while a message is arriving leaves the stream where it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Generic

from .._guard import AnyioCallGuard, CallGuard, Guard
from .._method import MethodSpec, ReqT, RespT
from .._runtime import ChannelRuntime
from .._status import Status
from .._wire import (
    frame_message,
    frame_message_async,
    is_grpc_content_type,
    message_payload_async,
    parse_message_prefix,
    rst_code_to_status,
    status_from_headers,
    status_from_http,
)
from ..errors import MessageTooLargeError, RpcError, StreamRefusedError
from ..interceptors.base import ClientCallInfo, ClientInterceptor, safely, status_of
from ..metadata import Metadata, decode_metadata
from ..transport import (
    ConnectionClosedError,
    ConnectionLostError,
    ErrorCode,
    Stream,
    StreamResetError,
    TransportError,
)
from ._connection import ClientConnection

if TYPE_CHECKING:
    from ._capture import CapturedCall

__all__ = ["DEADLINE_EXCEEDED", "ClientCall", "is_connection_failure", "is_endpoint_failure"]

DEADLINE_EXCEEDED = "deadline exceeded"
_STREAM_ERRORS = (StreamResetError, ConnectionLostError, TransportError)


def is_connection_failure(error: BaseException | None) -> bool:
    """UNAVAILABLE that rpcfw saw on the connection (lost, refused), not a server's status."""
    return (
        isinstance(error, RpcError)
        and error.status is Status.UNAVAILABLE
        and error.trailing_metadata is None
    )


def is_endpoint_failure(error: BaseException | None) -> bool:
    """The call counts as a failure of its endpoint for outlier detection: it ended
    UNAVAILABLE or DEADLINE_EXCEEDED (any other status means the endpoint answered)."""
    return isinstance(error, RpcError) and (
        error.status is Status.UNAVAILABLE or error.status is Status.DEADLINE_EXCEEDED
    )


class ClientCall(Generic[ReqT, RespT]):
    __slots__ = (
        "_conn",
        "_encoding",
        "_end_sent",
        "_headers",
        "_headers_checked",
        "_initial",
        "_max_recv",
        "_max_send",
        "_response_encoding",
        "_spec",
        "_started",
        "_stream",
        "_trailers_only",
        "_trailing",
        "capture",
        "done",
        "guard",
        "hooks",
        "info",
        "on_done",
    )

    def __init__(
        self,
        conn: ClientConnection,
        spec: MethodSpec[ReqT, RespT],
        headers: list[tuple[str, str]],
        deadline: float | None,
        max_receive: int,
        max_send: int | None,
        encoding: str | None = None,
    ) -> None:
        self._conn = conn
        self._encoding = encoding  # grpc-encoding of our messages
        self._response_encoding: str | None = None
        self._spec = spec
        self._headers = headers
        self._max_recv = max_receive
        self._max_send = max_send
        self._stream: Stream | None = None
        self._trailers_only = False
        self._end_sent = False
        self.done = False
        self._headers_checked = False
        self._initial: Metadata | None = None
        self._trailing: Metadata | None = None
        self.guard: Guard = AnyioCallGuard() if conn.anyio else CallGuard()
        self.on_done: Callable[[float, bool, bool], None] | None = None
        #: the channel's interceptors and what they see of this call (None: no interceptors)
        self.hooks: tuple[ClientInterceptor, ...] | None = None
        self.info: ClientCallInfo | None = None
        #: the ``rpcfw.capture_call()`` block that watches this call, if any
        self.capture: CapturedCall | None = None
        self._started = time.monotonic()
        if deadline is not None:
            self.guard.set_deadline(deadline, RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED))

    @property
    def initial_metadata(self) -> Metadata | None:
        """The server's response metadata, once its headers arrived (decoded on first use)."""
        if self._initial is None and self._headers_checked and not self._trailers_only:
            assert self._stream is not None and self._stream.headers is not None
            self._initial = decode_metadata(self._stream.headers)
        return self._initial

    @property
    def trailing_metadata(self) -> Metadata | None:
        """The server's trailing metadata, once the call is done (decoded on first use)."""
        if self._trailing is None and self.done and self._stream is not None:
            answer = self._stream.trailers if not self._trailers_only else self._stream.headers
            if answer is not None:
                self._trailing = decode_metadata(answer)
        return self._trailing

    def annotate(self, error: BaseException | None) -> None:
        """Give an RpcError of this call the response metadata, if the headers arrived."""
        if isinstance(error, RpcError) and error.initial_metadata is None:
            error.initial_metadata = self._received_initial_metadata()

    def _received_initial_metadata(self) -> Metadata | None:
        if self._headers_checked:
            return self.initial_metadata
        headers = None if self._stream is None else self._stream.headers
        if headers is None:
            return None
        if any(key == "grpc-status" for key, _ in headers):  # trailers-only: no metadata
            return Metadata()
        return decode_metadata(headers)

    @property
    def peer(self) -> str:
        """The endpoint the call went to: ``host:port``, or ``unix:/path``."""
        return self._conn.label

    @property
    def ended(self) -> bool:
        """Nothing more can happen on the call: its status was read, it was cancelled or
        hit its deadline, or its stream ended abnormally."""
        stream = self._stream
        return (
            self.done
            or self.guard.error is not None
            or (stream is not None and stream.error is not None)
        )

    @property
    def runtime(self) -> ChannelRuntime:
        return self._conn.runtime

    @property
    def answered(self) -> bool:
        """The server has ended its side (trailers or a trailers-only response arrived)."""
        return self._stream is not None and self._stream.end_received

    # -- sending -------------------------------------------------------------------------
    async def start(self, first: ReqT | None = None, *, end: bool = False) -> None:
        """Open the stream: headers and (optionally) the first message in one write."""
        if not self._conn.ready:
            raise StreamRefusedError("connection is draining or closed")
        payload = None if first is None else await self._frame(first.SerializeToString())
        try:
            stream = self._conn.try_open_stream(self._headers, end and payload is None)
            if stream is None:  # at the server's stream limit: wait for a slot
                with self.guard:
                    stream = await self._conn.open_stream(self._headers, end and payload is None)
        except (ConnectionClosedError, RuntimeError):
            raise StreamRefusedError("connection closed before the call started") from None
        self._stream = stream
        if payload is not None:
            if self.hooks is not None:
                self._sent(first, payload)
            try:
                stream.send_data_nowait(payload, end)
            except _STREAM_ERRORS:
                raise self._terminated_error() from None
            await self._drain()
        self._end_sent = end

    async def _frame(self, payload: bytes) -> bytes:
        if self._encoding is None:
            return frame_message(payload, self._max_send)
        return await frame_message_async(payload, self._max_send, self._encoding)

    async def _drain(self) -> None:
        assert self._stream is not None
        if not self._stream.needs_drain:
            return
        try:
            with self.guard:
                await self._stream.drain()
        except _STREAM_ERRORS:
            raise self._terminated_error() from None

    async def send(self, message: ReqT, *, end: bool = False) -> None:
        if self._stream is None:
            await self.start(message, end=end)
            return
        if self._end_sent:
            raise RpcError(Status.INTERNAL, "cannot send after done_writing()")
        payload = await self._frame(message.SerializeToString())
        if self.hooks is not None:
            self._sent(message, payload)
        try:
            self._stream.send_data_nowait(payload, end)
        except _STREAM_ERRORS:
            raise self._terminated_error() from None
        self._end_sent = end
        await self._drain()

    async def end(self) -> None:
        if self._stream is None:
            await self.start(end=True)
            return
        if self._end_sent:
            return
        self._end_sent = True
        try:
            self._stream.send_data_nowait(b"", True)
        except _STREAM_ERRORS:
            raise self._terminated_error() from None
        await self._drain()

    # -- receiving -----------------------------------------------------------------------
    async def recv_initial_metadata(self) -> Metadata:
        """Wait for the response headers; raise the status of a trailers-only error answer."""
        if not self._headers_checked:
            await self._check_headers()
        metadata = self.initial_metadata
        return Metadata() if metadata is None else metadata

    async def check_accepted(self) -> None:
        """Wait for the response headers (raises a trailers-only error answer's status)."""
        if not self._headers_checked:
            await self._check_headers()

    async def _check_headers(self) -> None:
        stream = self._stream
        assert stream is not None
        headers = stream.headers
        if headers is None:
            try:
                with self.guard:
                    headers = await stream.wait_headers()
            except _STREAM_ERRORS:
                raise self._terminated_error() from None
        http_status = content_type = None
        has_status = False
        for key, value in headers:
            if key == ":status":
                http_status = value
            elif key == "content-type":
                content_type = value
            elif key == "grpc-status":
                has_status = True
            elif key == "grpc-encoding":
                self._response_encoding = None if value == "identity" else value
        if http_status != "200":
            raise status_from_http(str(http_status))
        if has_status:  # trailers-only response: the whole answer is in these headers
            self._trailers_only = True
            self._headers_checked = True
            self._initial = Metadata()
            self.done = True
            error = status_from_headers(headers)
            if error is not None:
                error.initial_metadata = self._initial
                raise error
            return
        if not is_grpc_content_type(content_type):
            raise RpcError(Status.UNKNOWN, f"invalid content-type {content_type!r}")
        self._headers_checked = True

    async def _fill(self, size: int) -> bool:
        stream = self._stream
        assert stream is not None
        if stream.buffered >= size:
            return True
        if stream.end_received:  # everything the server sent is here: no waiting, no guard
            return False
        try:
            with self.guard:
                return await stream.fill(size)
        except _STREAM_ERRORS:
            raise self._terminated_error() from None

    async def recv(self) -> RespT | None:
        """The next message, or None once the server has ended its stream."""
        if not self._headers_checked:
            await self._check_headers()
        if self._trailers_only:
            return None
        stream = self._stream
        assert stream is not None
        if not await self._fill(5):
            if stream.buffered:
                raise RpcError(Status.INTERNAL, "stream ended in the middle of a message")
            return None
        prefix = stream.peek(5)
        try:
            length = parse_message_prefix(prefix, self._max_recv)
        except MessageTooLargeError:
            self.reset(ErrorCode.CANCEL)
            raise
        if not await self._fill(5 + length):
            raise RpcError(Status.INTERNAL, "stream ended in the middle of a message")
        data = stream.take(5 + length, 5)
        if prefix[0]:
            try:
                data = await message_payload_async(1, data, self._response_encoding, self._max_recv)
            except RpcError:
                self.reset(ErrorCode.CANCEL)
                raise
        try:
            message = self._spec.decode_response(data)
        except Exception as exc:
            self.reset(ErrorCode.CANCEL)
            raise RpcError(Status.INTERNAL, f"failed to decode response: {exc}") from None
        if self.hooks is not None:
            self._received(message, len(data))
        return message

    async def finish(self) -> None:
        """Wait for the trailers; raise the call's status if it is not OK."""
        if self.done:
            return
        stream = self._stream
        assert stream is not None
        if stream.trailers is None:
            try:
                with self.guard:
                    await stream.wait_end()
            except _STREAM_ERRORS:
                raise self._terminated_error() from None
            if stream.trailers is None:  # END_STREAM on DATA: no trailers at all
                self.done = True
                raise RpcError(Status.INTERNAL, "server ended the stream without trailers")
        self.done = True
        error = status_from_headers(stream.trailers)
        if error is not None:
            self.annotate(error)
            raise error

    async def recv_unary(self) -> RespT:
        """A unary response: exactly one message, then an OK status."""
        message = await self.recv()
        if message is None:
            await self.finish()
            raise RpcError(Status.UNIMPLEMENTED, "server sent no response message")
        await self.finish()
        return message

    # -- ending --------------------------------------------------------------------------
    def _terminated_error(self) -> RpcError:
        """Why the stream ended before its status arrived."""
        error = self.guard.error
        if isinstance(error, RpcError):  # deadline, or cancelled by the caller
            self.reset(ErrorCode.CANCEL)
            return error
        stream = self._stream
        if stream is None:
            return RpcError(Status.UNAVAILABLE, "connection lost during the call")
        for answer in (stream.trailers, stream.headers):
            if answer is not None and any(k == "grpc-status" for k, _ in answer):
                self.done = True
                status = status_from_headers(answer)
                if status is not None:
                    self.annotate(status)
                    return status
        cause = stream.error
        if isinstance(cause, StreamResetError):
            if cause.code == ErrorCode.REFUSED_STREAM and cause.remote:
                return StreamRefusedError(cause.message or "stream refused by server")
            if not cause.remote:
                code = (
                    Status.RESOURCE_EXHAUSTED
                    if cause.code == ErrorCode.ENHANCE_YOUR_CALM
                    else Status.INTERNAL
                )
                return RpcError(code, cause.message)
            return rst_code_to_status(cause.code)
        return RpcError(Status.UNAVAILABLE, "connection lost during the call")

    def cancel(self, message: str = "cancelled by the client") -> None:
        """End the call now: RST_STREAM CANCEL; waiting readers and writers see CANCELLED."""
        if not self.done:
            self.guard.cancel(RpcError(Status.CANCELLED, message))
            self.reset(ErrorCode.CANCEL)

    def reset(self, code: int = ErrorCode.CANCEL) -> None:
        if self._stream is not None:
            self._stream.reset(code)

    def __enter__(self) -> ClientCall[ReqT, RespT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)

    # -- interceptors ----------------------------------------------------------------------
    def _sent(self, message: object, framed: bytes) -> None:
        assert self.hooks is not None and self.info is not None
        self.info.messages_sent += 1
        self.info.bytes_sent += len(framed) - 5
        for hook in self.hooks:
            safely(hook.on_send, self.info, message)

    def _received(self, message: object, size: int) -> None:
        assert self.hooks is not None and self.info is not None
        self.info.messages_received += 1
        self.info.bytes_received += size
        for hook in self.hooks:
            safely(hook.on_receive, self.info, message)

    def _end_hooks(self, error: BaseException | None) -> None:
        hooks, self.hooks = self.hooks, None
        info = self.info
        assert hooks is not None and info is not None
        info.status, info.error = status_of(error, self.done)
        info.ended = time.monotonic()
        for hook in reversed(hooks):
            safely(hook.on_end, info)

    def close(self, error: BaseException | None = None) -> None:
        """Release the stream; a call not finished by now is cancelled (RST_STREAM CANCEL).
        Reports the call's latency, whether it failed at the connection level and whether it
        counts against its endpoint for outlier detection (once)."""
        self.annotate(error)
        if self.capture is not None:
            self.capture._end(self, error)
        if self.hooks is not None:
            self._end_hooks(error)
        self.guard.close()
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            if error is None and not self.done:
                error = self.guard.error  # a deadline that ended a stream closed without error
            lost = is_connection_failure(error)
            on_done(time.monotonic() - self._started, lost, lost or is_endpoint_failure(error))
        stream = self._stream
        if stream is None:
            return
        if not stream.released:
            stream.reset(ErrorCode.NO_ERROR if self.done else ErrorCode.CANCEL)
            stream.release()
