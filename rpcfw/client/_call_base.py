"""The state of one client call (``ClientCall``'s base): what the server sent, how the call
ended, cancellation, interceptor hooks, and the release of its stream with the latency and
failure report for the balancer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic

from .._guard import AnyioCallGuard, CallGuard, Guard
from .._method import MethodSpec, ReqT, RespT
from .._runtime import ChannelRuntime
from .._status import Status
from .._wire import rst_code_to_status, status_from_headers
from ..errors import RpcError, StreamRefusedError
from ..interceptors.base import ClientCallInfo, ClientInterceptor, safely, status_of
from ..metadata import Metadata, decode_metadata
from ..transport import ErrorCode, Stream, StreamResetError
from ._call_api import ClosesOnExit
from ._call_status import DEADLINE_EXCEEDED, is_connection_failure, is_endpoint_failure
from ._connection import ClientConnection

if TYPE_CHECKING:
    from ._capture import CapturedCall

__all__ = ["CallBase"]


class CallBase(ClosesOnExit, Generic[ReqT, RespT]):
    """A call's state and how it ends: metadata, status truth after an abnormal end,
    cancellation, the interceptors' hooks and the release of its stream."""

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
