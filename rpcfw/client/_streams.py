"""Streaming call objects handed to users: the bidirectional stream and request pumping."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Generic

from .._method import ReqT, RespT
from .._runtime import ChannelRuntime, TaskHandle
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._call import ClientCall

__all__ = [
    "BidiStream",
    "RequestSender",
    "iterate_requests",
    "send_all",
    "unary_response_while_sending",
]


async def iterate_requests(requests: Iterable[ReqT] | AsyncIterable[ReqT]) -> AsyncIterator[ReqT]:
    if isinstance(requests, AsyncIterable):
        async for request in requests:
            yield request
    else:
        for request in requests:
            yield request


async def send_all(
    call: ClientCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
) -> None:
    """Send every request, then half-close. Stops quietly if the server already answered."""
    try:
        async for request in iterate_requests(requests):
            if call.answered:
                return
            await call.send(request)
        await call.end()
    except RpcError:
        if not (call.done or call.answered):
            raise


class RequestSender:
    """Sends a call's requests from a task of the channel's runtime while the caller receives.
    A failing request iterator (or send) cancels the call, so that a receiver waiting for the
    answer wakes up; ``failure`` is what it failed with."""

    def __init__(
        self, call: ClientCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
    ) -> None:
        self.failure: Exception | None = None
        self._task = call.runtime.spawn(
            lambda: self._send(call, requests), "sending requests", report=False
        )

    async def _send(
        self, call: ClientCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
    ) -> None:
        try:
            await send_all(call, requests)
        except Exception as exc:
            self.failure = exc  # before the cancel wakes the receiver
            call.cancel("the request iterator failed")
            raise

    async def wait(self) -> None:
        """Until every request was sent (or sending failed: its error is raised)."""
        await self._task.wait()
        if self.failure is not None:
            raise self.failure

    async def stop(self) -> None:
        """Cancel the sending (if still running) and wait until it ended. A cancellation of
        the caller still propagates."""
        self._task.cancel()
        await self._task.wait()


async def unary_response_while_sending(
    call: ClientCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
) -> RespT:
    """A client-streaming call: send the requests and wait for the response at the same time,
    so a server that answers before the request stream ended (an error status, say) ends the
    call even while the request iterator is still waiting for its next item. A failing
    iterator cancels the call (RST_STREAM CANCEL) and its error is raised."""
    sender = RequestSender(call, requests)
    try:
        # answered before every request was sent? gRPC drops the rest: ``finally`` cancels
        return await call.recv_unary()
    except RpcError:
        if sender.failure is not None:
            raise sender.failure from None
        raise
    finally:
        await sender.stop()


class BidiStream(Generic[ReqT, RespT]):
    """A bidirectional call: ``send``/``done_writing`` and ``recv``/``async for``, usable from
    different tasks at once. Use it as an async context manager; leaving the block before the
    call finished cancels it (RST_STREAM CANCEL)."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[ClientCall[ReqT, RespT]]],
        runtime: Callable[[], ChannelRuntime],
    ) -> None:
        self._opener = opener
        self._runtime = runtime
        self._call: ClientCall[ReqT, RespT] | None = None
        self._opening: TaskHandle | None = None
        self._error: RpcError | None = None

    async def _open(self) -> None:
        self._call = await self._opener()

    async def _get(self) -> ClientCall[ReqT, RespT]:
        if self._call is not None:
            return self._call
        if self._opening is None:  # opened once, in a task: a caller's cancel stops its wait
            self._opening = self._runtime().spawn(self._open, "opening a call", report=False)
        await self._opening.wait()
        call = self._opened()
        if call is None:
            error = self._opening.error()
            if error is not None:
                raise error
            raise RpcError(Status.CANCELLED, "stream closed before the call started")
        return call

    def _opened(self) -> ClientCall[ReqT, RespT] | None:
        return self._call  # (read again: the opening task set it meanwhile)

    async def __aenter__(self) -> BidiStream[ReqT, RespT]:
        await self._get()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish: cancels the call if the server has not sent its status yet."""
        opening = self._opening
        if self._call is None and opening is not None and not opening.done():
            opening.cancel()
            await opening.wait()  # our own cancellation still propagates
        if self._call is not None:
            if not self._call.done:
                self._call.cancel("stream closed before the call finished")
            self._call.close(self._error)

    async def send(self, message: ReqT) -> None:
        await (await self._get()).send(message)

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests follow."""
        await (await self._get()).end()

    async def recv(self) -> RespT | None:
        """The next response, or None when the server ended the call with OK."""
        if self._error is not None:  # the call ended with it: every later read says so too
            raise self._error
        call = await self._get()
        try:
            message = await call.recv()
            if message is None:
                await call.finish()
        except RpcError as exc:
            self._error = exc
            raise
        return message

    def __aiter__(self) -> AsyncIterator[RespT]:
        return self

    async def __anext__(self) -> RespT:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message

    async def cancel(self) -> None:
        """Cancel the call: the server sees CANCELLED, waiting readers get RpcError(CANCELLED)."""
        call = await self._get()
        call.cancel()

    @property
    def initial_metadata(self) -> Metadata | None:
        return None if self._call is None else self._call.initial_metadata

    @property
    def trailing_metadata(self) -> Metadata | None:
        return None if self._call is None else self._call.trailing_metadata

    @property
    def status(self) -> Status | None:
        """The call's status once ``recv()`` has seen its end (OK, or the error it raised);
        None while it runs."""
        if self._error is not None:
            return self._error.status
        return Status.OK if self._call is not None and self._call.done else None
