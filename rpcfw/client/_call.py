"""ClientCall: the client side of one RPC on one HTTP/2 stream, with gRPC semantics.

Status truth: whatever the server sent before its stream ended (response headers, messages,
trailers) is read and reported even if a RST_STREAM followed in the same read, and a server
that answers before the client half-closed (an error status, then RST_STREAM NO_ERROR) is
reported with that status, not as a failed send. Reads are cancel-safe: a ``recv()`` cancelled
while a message is arriving leaves the stream where it was.

The call is built in layers, one job each: ``CallBase`` (``_call_base.py``: state, ending,
release), ``ReceivingCall`` (``_call_recv.py``: headers, messages, status) and ``ClientCall``
here (opening the stream and sending).
"""

from __future__ import annotations

from .._method import ReqT, RespT
from .._status import Status
from .._wire import frame_message, frame_message_async
from ..errors import RpcError, StreamRefusedError
from ..transport import ConnectionClosedError
from ._call_recv import ReceivingCall
from ._call_status import (
    DEADLINE_EXCEEDED,
    STREAM_ERRORS,
    is_connection_failure,
    is_endpoint_failure,
)

__all__ = ["DEADLINE_EXCEEDED", "ClientCall", "is_connection_failure", "is_endpoint_failure"]


class ClientCall(ReceivingCall[ReqT, RespT]):
    """The client side of one RPC on one HTTP/2 stream."""

    __slots__ = ()

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
            except STREAM_ERRORS:
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
        except STREAM_ERRORS:
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
        except STREAM_ERRORS:
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
        except STREAM_ERRORS:
            raise self._terminated_error() from None
        await self._drain()
