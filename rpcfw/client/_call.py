"""ClientCall: the client side of one RPC on one HTTP/2 stream, with gRPC semantics.

grpclib's own client falls short of gRPC here (DESIGN.md): it resets a cancelled stream with
NO_ERROR, reports deadlines as bare asyncio timeouts, has no receive size limit, and reads an
unknown-service answer as UNKNOWN. This module owns those rules instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Literal

import h2.exceptions
from grpclib.exceptions import StreamTerminatedError
from grpclib.protocol import Stream
from h2.errors import ErrorCodes

from .._guard import CallGuard
from .._method import MethodSpec, ReqT, RespT
from .._status import Status
from .._wire import (
    frame_message,
    is_grpc_content_type,
    parse_message_prefix,
    rst_code_to_status,
    status_from_headers,
    status_from_http,
)
from ..errors import MessageTooLargeError, RpcError, StreamRefusedError
from ..metadata import Metadata, decode_metadata
from ._connection import ClientConnection

__all__ = ["DEADLINE_EXCEEDED", "ClientCall", "is_connection_failure"]

DEADLINE_EXCEEDED = "deadline exceeded"


def is_connection_failure(error: BaseException | None) -> bool:
    """UNAVAILABLE that rpcfw saw on the connection (lost, refused), not a server's status."""
    return (
        isinstance(error, RpcError)
        and error.status is Status.UNAVAILABLE
        and error.trailing_metadata is None
    )


class ClientCall(Generic[ReqT, RespT]):
    __slots__ = (
        "_conn",
        "_end_sent",
        "_headers",
        "_max_recv",
        "_max_send",
        "_release",
        "_spec",
        "_started",
        "_stream",
        "_trailers_only",
        "done",
        "guard",
        "initial_metadata",
        "on_done",
        "trailing_metadata",
    )

    def __init__(
        self,
        conn: ClientConnection,
        spec: MethodSpec[ReqT, RespT],
        headers: list[tuple[str, str]],
        deadline: float | None,
        max_receive: int,
        max_send: int | None,
    ) -> None:
        self._conn = conn
        self._spec = spec
        self._headers = headers
        self._max_recv = max_receive
        self._max_send = max_send
        self._stream: Stream | None = None
        self._release: Any = None
        self._trailers_only = False
        self._end_sent = False
        self.done = False
        self.initial_metadata: Metadata | None = None
        self.trailing_metadata: Metadata | None = None
        self.guard = CallGuard()
        self.on_done: Callable[[float, bool], None] | None = None
        self._started = time.monotonic()
        if deadline is not None:
            self.guard.set_deadline(
                asyncio.get_running_loop(),
                deadline,
                RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED),
            )

    # -- sending -------------------------------------------------------------------------
    async def start(self, first: ReqT | None = None, *, end: bool = False) -> None:
        """Open the stream: headers and (optionally) the first message in one write."""
        protocol = self._conn.protocol
        if protocol is None or not self._conn.ready:
            raise StreamRefusedError("connection is draining or closed")
        payload = (
            None if first is None else frame_message(first.SerializeToString(), self._max_send)
        )
        connection = protocol.connection
        h2c = protocol.h2
        stream = connection.create_stream(wrapper=self.guard)  # type: ignore[arg-type]
        try:
            with self.guard:
                while True:
                    if not connection.write_ready.is_set():
                        await connection.write_ready.wait()
                    if not self._conn.ready:
                        raise StreamRefusedError("connection closed before the call started")
                    stream_id = h2c.get_next_available_stream_id()
                    try:
                        h2c.send_headers(
                            stream_id, self._headers, end_stream=end and payload is None
                        )
                    except h2.exceptions.TooManyStreamsError:
                        connection.stream_close_waiter.clear()
                        await connection.stream_close_waiter.wait()
                        continue
                    break
        except h2.exceptions.NoAvailableStreamIDError:
            self._conn.draining = True
            raise StreamRefusedError("connection ran out of stream ids") from None
        stream.init_stream(stream_id, connection)
        self._stream = stream
        self._release = protocol.processor.register(stream)
        sent = payload is None
        if payload is not None and len(payload) <= min(
            h2c.local_flow_control_window(stream_id), h2c.max_outbound_frame_size
        ):
            h2c.send_data(stream_id, payload, end_stream=end)
            sent = True
        data = h2c.data_to_send()
        if data and protocol.transport is not None:
            protocol.transport.write(data)
        if not sent:
            assert payload is not None
            await self._send_bytes(payload, end)
        self._end_sent = end

    async def _send_bytes(self, payload: bytes, end: bool) -> None:
        assert self._stream is not None
        try:
            with self.guard:
                await self._stream.send_data(payload, end_stream=end)
        except (
            StreamTerminatedError,
            h2.exceptions.StreamClosedError,
            h2.exceptions.ProtocolError,
        ):
            raise self._terminated_error() from None

    async def send(self, message: ReqT, *, end: bool = False) -> None:
        if self._stream is None:
            await self.start(message, end=end)
            return
        if self._end_sent:
            raise RpcError(Status.INTERNAL, "cannot send after done_writing()")
        await self._send_bytes(frame_message(message.SerializeToString(), self._max_send), end)
        self._end_sent = end

    async def end(self) -> None:
        if self._stream is None:
            await self.start(end=True)
            return
        if self._end_sent:
            return
        self._end_sent = True
        try:
            with self.guard:
                await self._stream.end()
        except (
            StreamTerminatedError,
            h2.exceptions.StreamClosedError,
            h2.exceptions.ProtocolError,
        ):
            raise self._terminated_error() from None

    # -- receiving -----------------------------------------------------------------------
    async def _arrived(self, which: Literal["headers", "trailers"]) -> list[tuple[str, str]]:
        """The response headers or trailers: those already received, even if the stream was
        reset since (they can come in the same read as a trailing RST_STREAM), else wait."""
        stream = self._stream
        assert stream is not None
        block: list[tuple[str, str]] | None = getattr(stream, which)
        if block is None:
            try:
                with self.guard:
                    if which == "headers":
                        block = await stream.recv_headers()
                    else:
                        block = await stream.recv_trailers()
            except StreamTerminatedError:
                block = getattr(stream, which)
                if block is None:
                    raise self._terminated_error() from None
        return block

    async def recv_initial_metadata(self) -> Metadata:
        if self.initial_metadata is not None:
            return self.initial_metadata
        headers = await self._arrived("headers")
        http_status = content_type = None
        has_status = False
        for key, value in headers:
            if key == ":status":
                http_status = value
            elif key == "content-type":
                content_type = value
            elif key == "grpc-status":
                has_status = True
        if http_status != "200":
            raise status_from_http(str(http_status))
        if has_status:  # trailers-only response: the whole answer is in these headers
            self._trailers_only = True
            self.initial_metadata = Metadata()
            self.trailing_metadata = decode_metadata(headers)
            self.done = True
            error = status_from_headers(headers)
            if error is not None:
                raise error
            return self.initial_metadata
        if not is_grpc_content_type(content_type):
            raise RpcError(Status.UNKNOWN, f"invalid content-type {content_type!r}")
        self.initial_metadata = decode_metadata(headers)
        return self.initial_metadata

    async def recv(self) -> RespT | None:
        """The next message, or None once the server has ended its stream."""
        if self.initial_metadata is None:
            await self.recv_initial_metadata()
        if self._trailers_only:
            return None
        stream = self._stream
        assert stream is not None
        length: int | None = None
        try:
            while True:
                try:
                    with self._reading_guard():
                        if length is None:
                            prefix = await stream.recv_data(5)
                            if not prefix:
                                return None
                            length = parse_message_prefix(prefix, self._max_recv)
                        data = await stream.recv_data(length) if length else b""
                    break
                except StreamTerminatedError:
                    if stream.trailers is None:
                        raise self._terminated_error() from None
                    # reset in the same read as the trailers: the rest is buffered, read it
        except MessageTooLargeError:
            self.reset(ErrorCodes.CANCEL)
            raise
        except AssertionError:
            raise RpcError(Status.INTERNAL, "stream ended in the middle of a message") from None
        try:
            return self._spec.decode_response(data)
        except Exception as exc:
            self.reset(ErrorCodes.CANCEL)
            raise RpcError(Status.INTERNAL, f"failed to decode response: {exc}") from None

    async def finish(self) -> None:
        """Wait for the trailers; raise the call's status if it is not OK."""
        if self.done:
            return
        trailers = await self._arrived("trailers")
        self.done = True
        self.trailing_metadata = decode_metadata(trailers)
        error = status_from_headers(trailers)
        if error is not None:
            raise error

    async def recv_unary(self) -> RespT:
        """A unary response: exactly one message, then an OK status."""
        message = await self.recv()
        if message is None:
            await self.finish()
            raise RpcError(Status.UNIMPLEMENTED, "server sent no response message")
        await self.finish()
        return message

    def _reading_guard(self) -> CallGuard | contextlib.nullcontext[None]:
        """Once the trailers are in, every message is buffered and reads cannot block: read them
        even if the stream was reset since. A server that finishes before the client half-closes
        sends its trailers and then RST_STREAM (NO_ERROR), often in the same TCP read; going by
        the guard alone would drop the replies (and turn an OK status into INTERNAL)."""
        assert self._stream is not None
        return contextlib.nullcontext() if self._stream.trailers is not None else self.guard

    # -- ending --------------------------------------------------------------------------
    def _terminated_error(self) -> RpcError:
        """Why the stream ended before its status arrived."""
        error = self.guard.error
        if isinstance(error, RpcError):  # deadline, or cancelled by the caller
            self.reset(ErrorCodes.CANCEL)
            return error
        stream = self._stream
        if stream is not None:
            for answer in (stream.trailers, stream.headers):
                if answer is not None and any(k == "grpc-status" for k, _ in answer):
                    self.done = True
                    status = status_from_headers(answer)
                    if status is not None:
                        return status
            protocol = self._conn.protocol
            processor = getattr(protocol, "processor", None)
            if processor is not None and stream.id is not None:
                if stream.id in processor.refused:
                    return StreamRefusedError("stream refused by GOAWAY")
                code = processor.reset_codes.get(stream.id)
                if code is not None:
                    if code == ErrorCodes.REFUSED_STREAM:
                        return StreamRefusedError("stream refused by server")
                    return rst_code_to_status(code)
        return RpcError(Status.UNAVAILABLE, "connection lost during the call")

    def cancel(self, message: str = "cancelled by the client") -> None:
        """End the call now: RST_STREAM CANCEL; waiting readers and writers see CANCELLED."""
        if not self.done:
            self.guard.cancel(RpcError(Status.CANCELLED, message))
            self.reset(ErrorCodes.CANCEL)

    def reset(self, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        stream = self._stream
        if stream is not None and stream.id is not None:
            try:
                if stream.closable:
                    stream.reset_nowait(code)
            except (h2.exceptions.ProtocolError, AttributeError):
                pass

    def __enter__(self) -> ClientCall[ReqT, RespT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)

    def close(self, error: BaseException | None = None) -> None:
        """Release the stream; a call not finished by now is cancelled (RST_STREAM CANCEL).
        Reports the call's latency and whether it failed at the connection level (once)."""
        self.guard.close()
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(time.monotonic() - self._started, is_connection_failure(error))
        if self._stream is None:
            return
        self.reset(ErrorCodes.NO_ERROR if self.done else ErrorCodes.CANCEL)
        if self._release is not None:
            release, self._release = self._release, None
            release()
