"""Call objects: one call of any kind, with its metadata, status, peer and ``cancel()``.

``Channel.unary_call`` / ``server_stream_call`` / ``client_stream_call`` (and the generated
client-streaming stub without requests) return them; ``BidiStream`` shares the base. A call
object opens its call on first use, in a task of the channel's runtime (so that a caller
cancelled while it waits stops only its own wait); reads take turns, so any task may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, NoReturn, Self, TypeVar

import anyio

from .._method import ReqT, RespT
from .._runtime import ChannelRuntime, EventLike, TaskHandle
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._call_api import ActiveCall

__all__ = ["CallObject", "ClientStreamCall", "ServerStreamCall", "UnaryCall"]

T = TypeVar("T")

_CANCELLED = "cancelled by the client"


class CallObject(Generic[RespT]):
    """What every call object has: ``initial_metadata``, ``trailing_metadata``, ``status``,
    ``peer`` (None until known), ``await wait_initial_metadata()`` and ``cancel()``."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[ActiveCall[Any, RespT]]],
        runtime: Callable[[], ChannelRuntime],
    ) -> None:
        self._opener = opener
        self._runtime = runtime
        self._call: ActiveCall[Any, RespT] | None = None
        self._opening: TaskHandle | None = None
        self._error: RpcError | None = None  # how the call ended, when not OK
        self._reading = False  # a task is reading (the stream has one reader waker)
        self._turn: EventLike | None = None  # set when that read ends, if others wait

    # -- opening -----------------------------------------------------------------------------
    async def _open(self) -> None:
        call = await self._opener()
        if self._error is not None:  # cancelled while it was being opened
            call.cancel(_CANCELLED)
            call.close(self._error)
            return
        self._call = call

    async def _get(self) -> ActiveCall[Any, RespT]:
        if self._call is not None:
            return self._call
        if self._error is not None:
            raise self._error
        if self._opening is None:  # opened once, in a task: a caller's cancel stops its wait
            self._opening = self._runtime().spawn(self._open, "opening a call", report=False)
        await self._opening.wait()
        call = self._opened()
        if call is not None:
            return call
        if self._error is None:
            error = self._opening.error()
            if error is not None and not isinstance(error, RpcError):
                raise error  # not a call's outcome (invalid metadata, say): nothing to record
            self._error = error or RpcError(Status.CANCELLED, "call closed before it started")
        raise self._error

    def _opened(self) -> ActiveCall[Any, RespT] | None:
        return self._call  # (read again: the opening task set it meanwhile)

    async def _read(self, read: Callable[[ActiveCall[Any, RespT]], Awaitable[T]]) -> T:
        """Run ``read`` on the call, one reader at a time; an RpcError ends the call."""
        if self._error is not None:
            raise self._error
        call = await self._get()
        while self._reading:  # another task reads: wait for its turn to end
            if self._turn is None:
                self._turn = call.runtime.event()
            await self._turn.wait()
        if self._error is not None:
            raise self._error
        self._reading = True
        try:
            return await read(call)
        except RpcError as exc:
            self._raise_ended(exc)
        finally:
            self._reading = False
            turn, self._turn = self._turn, None
            if turn is not None:
                turn.set()

    def _raise_ended(self, exc: RpcError) -> NoReturn:
        """The call ended with ``exc``: record it, raise what it ended with."""
        error = self._fail(exc)
        if error is exc:
            raise exc
        raise error from None

    def _fail(self, error: RpcError) -> RpcError:
        """The call ended with ``error`` (the first one wins): record it, release the call."""
        if self._error is None:
            self._error = error
        call = self._call
        if call is not None:
            call.close(self._error)  # annotates it with the response metadata, if any
        return self._error

    # -- the call's state --------------------------------------------------------------------
    def cancel(self) -> bool:
        """End the call now: RST_STREAM CANCEL, the server's handler is cancelled, and every
        task waiting on the call (and every later use of it) gets ``RpcError(CANCELLED)``.
        False if the call had already ended (its status stays)."""
        if self._error is not None:
            return False
        call, opening = self._call, self._opening
        if call is None and opening is not None and opening.done():  # failed to open
            error = opening.error()
            if isinstance(error, RpcError):
                self._error = error
            return False
        if call is None:  # not opened yet, or being opened
            self._error = RpcError(Status.CANCELLED, _CANCELLED)
            if opening is not None:
                opening.cancel()
            return True
        if call.ended or call.answered:
            return False
        call.cancel(_CANCELLED)
        error = call.guard.error
        self._fail(error if isinstance(error, RpcError) else RpcError(Status.CANCELLED, _CANCELLED))
        return True

    @property
    def peer(self) -> str | None:
        """The endpoint the call went to (``host:port``, ``unix:/path``); None until the call
        was opened."""
        return None if self._call is None else self._call.peer

    @property
    def initial_metadata(self) -> Metadata | None:
        """The server's response metadata once its headers were read (empty for an answer
        without headers of its own), else None (see ``wait_initial_metadata``)."""
        if self._call is not None and (metadata := self._call.initial_metadata) is not None:
            return metadata
        return None if self._error is None else self._error.initial_metadata

    @property
    def trailing_metadata(self) -> Metadata | None:
        """The server's trailing metadata once the call ended (None before, or when the call
        ended without the server's status)."""
        if self._call is not None and (metadata := self._call.trailing_metadata) is not None:
            return metadata
        return None if self._error is None else self._error.trailing_metadata

    @property
    def status(self) -> Status | None:
        """OK, or the error the call ended with, once it has ended; None while it runs."""
        if self._error is not None:
            return self._error.status
        return Status.OK if self._call is not None and self._call.done else None

    @property
    def error(self) -> RpcError | None:
        """The ``RpcError`` the call ended with (None while it runs or after OK)."""
        return self._error

    async def wait_initial_metadata(self) -> Metadata:
        """Wait for the server's response headers and return their metadata (opens the call
        if needed). Raises the call's error if it ended first without any (a trailers-only
        error answer, a deadline, ``cancel()``)."""
        call = self._call
        if call is not None and (metadata := call.initial_metadata) is not None:
            return metadata
        return await self._read(lambda call: call.recv_initial_metadata())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish with the call: cancels it if it has not ended yet (leaving ``async with``
        does this). Idempotent."""
        opening = self._opening
        if self._call is None and opening is not None and not opening.done():
            if self._error is None:
                self._error = RpcError(Status.CANCELLED, "call closed before it started")
            opening.cancel()
            await opening.wait()  # our own cancellation still propagates
        call = self._call
        if call is not None:
            if not call.done and self._error is None:
                self.cancel()
            call.close(self._error)


class _ReplyCall(CallObject[RespT]):
    """A call with one reply: awaiting it (again) gives that reply; cancelling the task that
    awaits it cancels the call, as with ``await stub.method()``."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[ActiveCall[Any, RespT]]],
        runtime: Callable[[], ChannelRuntime],
    ) -> None:
        super().__init__(opener, runtime)
        self._reply: RespT | None = None

    def __await__(self) -> Generator[Any, None, RespT]:
        return self.response().__await__()

    async def response(self) -> RespT:
        """The reply (``await call`` does the same)."""
        if self._reply is not None:
            return self._reply
        try:
            await self._before_response()
            return await self._read(self._recv)
        except anyio.get_cancelled_exc_class():  # the caller was cancelled: so is the call
            self.cancel()
            raise

    async def _before_response(self) -> None:
        pass

    async def _recv(self, call: ActiveCall[Any, RespT]) -> RespT:
        if self._reply is None:
            self._reply = await call.recv_unary()
            call.close()
        return self._reply


class UnaryCall(_ReplyCall[RespT]):
    """A unary call: ``reply = await call`` (again: the same reply), plus the call's state."""


class ServerStreamCall(CallObject[RespT]):
    """A server-streaming call: ``async for reply in call`` or ``await call.recv()`` (None at
    the end), plus the call's state. Reads are cancel-safe (a cancelled ``recv()`` loses
    nothing and the call goes on); use ``async with`` (or ``cancel()``) to end it early."""

    def __aiter__(self) -> ServerStreamCall[RespT]:
        return self

    async def __anext__(self) -> RespT:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv(self) -> RespT | None:
        """The next reply, or None once the server ended the call with OK."""
        return await self._read(_recv_or_end)


async def _recv_or_end(call: ActiveCall[Any, RespT]) -> RespT | None:
    if call.done:
        return None
    message = await call.recv()
    if message is None:
        await call.finish()
        call.close()
    return message


class ClientStreamCall(_ReplyCall[RespT], Generic[ReqT, RespT]):
    """A client-streaming call: ``send`` requests, then ``reply = await call.response()``
    (or ``await call``), which half-closes first if ``done_writing()`` was not called.
    Cancelling the task that awaits the reply cancels the call. One task writes at a time."""

    _half_closed = False

    async def send(self, message: ReqT) -> None:
        """Send one request (waits while flow control holds it back). Raises the call's
        status if the server has ended it with an error."""
        if self._half_closed:
            raise RpcError(Status.INTERNAL, "cannot send after done_writing()")
        await self._write(lambda call: call.send(message))

    async def done_writing(self) -> None:
        """Half-close: no more requests follow."""
        await self._write(_end)
        self._half_closed = True

    async def _before_response(self) -> None:
        if not self._half_closed:
            await self.done_writing()

    async def _write(self, write: Callable[[ActiveCall[ReqT, RespT]], Awaitable[None]]) -> None:
        if self._error is not None:
            raise self._error
        call: ActiveCall[ReqT, RespT] = await self._get()
        if not call.answered:
            try:
                await write(call)
                return
            except RpcError as exc:
                if not call.ended:
                    raise  # a message over the limit, a send after done_writing(): goes on
                if exc.trailing_metadata is not None or not call.answered:
                    self._raise_ended(exc)  # the server's status, or the call broke
        # the server ended the call before every request was sent: its answer is the outcome
        # (an error is raised; after OK the request is dropped, as gRPC does)
        await self._read(self._recv)


async def _end(call: ActiveCall[Any, Any]) -> None:
    await call.end()
