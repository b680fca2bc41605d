"""``capture_call()``: the state of a call made through a generated stub's plain form.

``with rpcfw.capture_call() as call: reply = await stub.method(request)`` gives ``call``'s
metadata, status and peer after (or, from another task, during) the call, without a call
object: the channel hands each call it starts to the capture of the current context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .._status import Status
from ..errors import RpcError
from ..interceptors.base import status_of
from ..metadata import Metadata
from ._call_base import CallBase

__all__ = ["CapturedCall", "attach", "capture_call"]

_CAPTURE: ContextVar[CapturedCall | None] = ContextVar("rpcfw_capture_call", default=None)


class CapturedCall:
    """The last call started inside a ``capture_call()`` block (with retries: its last
    attempt), as far as it got: ``initial_metadata``, ``trailing_metadata``, ``status``,
    ``error``, ``peer`` (None before the call was started or while unknown), ``cancel()``."""

    __slots__ = ("_call", "_ended", "_error", "_open")

    def __init__(self) -> None:
        self._call: CallBase[Any, Any] | None = None
        self._ended: Status | None = None
        self._error: RpcError | None = None
        self._open = True

    def _attach(self, call: CallBase[Any, Any]) -> None:
        if self._open:
            self._call, self._ended, self._error = call, None, None
            call.capture = self

    def _end(self, call: CallBase[Any, Any], error: BaseException | None) -> None:
        if call is self._call and self._ended is None:  # (a call may be closed again)
            self._ended, self._error = status_of(error, call.done)

    @property
    def peer(self) -> str | None:
        """The endpoint the call went to (``host:port``, ``unix:/path``)."""
        return None if self._call is None else self._call.peer

    @property
    def initial_metadata(self) -> Metadata | None:
        """The server's response metadata, once its headers were read."""
        if self._call is not None and (metadata := self._call.initial_metadata) is not None:
            return metadata
        return None if self._error is None else self._error.initial_metadata

    @property
    def trailing_metadata(self) -> Metadata | None:
        """The server's trailing metadata, once the call ended with the server's status."""
        if self._call is not None and (metadata := self._call.trailing_metadata) is not None:
            return metadata
        return None if self._error is None else self._error.trailing_metadata

    @property
    def status(self) -> Status | None:
        """The status the call ended with (leaving a call early counts as CANCELLED); None
        while it runs or before it started."""
        return self._ended

    @property
    def error(self) -> RpcError | None:
        """The ``RpcError`` the call ended with (None while it runs, or after OK)."""
        return self._error

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM CANCEL): its caller gets ``RpcError(CANCELLED)``.
        False if there is no call running."""
        call = self._call
        if call is None or self._ended is not None or call.ended or call.answered:
            return False
        call.cancel()
        return True


@contextmanager
def capture_call() -> Iterator[CapturedCall]:
    """Capture the call made in this block (in this task, and tasks it starts in the block)
    through any stub or channel method: ``with rpcfw.capture_call() as call: ...``. With
    several calls, the last one started; blocks nest (the innermost captures)."""
    captured = CapturedCall()
    token = _CAPTURE.set(captured)
    try:
        yield captured
    finally:
        captured._open = False
        _CAPTURE.reset(token)


def attach(call: CallBase[Any, Any]) -> None:
    """Hand a call the channel starts to the current context's capture, if any."""
    captured = _CAPTURE.get()
    if captured is not None:
        captured._attach(call)
