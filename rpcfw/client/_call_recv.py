"""The receiving half of a client call: response headers (HTTP status, content-type,
trailers-only answers), length-prefixed messages under the receive limit, and the status in
the trailers. Reads are cancel-safe: a ``recv()`` cancelled while a message is arriving leaves
the stream where it was."""

from __future__ import annotations

from .._method import ReqT, RespT
from .._status import Status
from .._wire import (
    is_grpc_content_type,
    message_payload_async,
    parse_message_prefix,
    status_from_headers,
    status_from_http,
)
from ..errors import MessageTooLargeError, RpcError
from ..metadata import Metadata
from ..transport import ErrorCode
from ._call_api import receive_unary
from ._call_base import CallBase
from ._call_status import STREAM_ERRORS

__all__ = ["ReceivingCall"]


class ReceivingCall(CallBase[ReqT, RespT]):
    """``CallBase`` plus reading the server's answer."""

    __slots__ = ()

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
            except STREAM_ERRORS:
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
        except STREAM_ERRORS:
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
            except STREAM_ERRORS:
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
        return await receive_unary(self)
