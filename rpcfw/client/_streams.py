"""Streaming call objects handed to users: the bidirectional stream and request pumping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Generic

from .._method import ReqT, RespT
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._call import ClientCall

__all__ = ["BidiStream", "iterate_requests", "send_all", "unary_response_while_sending"]


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


async def unary_response_while_sending(
    call: ClientCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
) -> RespT:
    """A client-streaming call: send the requests and wait for the response at the same time,
    so a server that answers before the request stream ended (an error status, say) ends the
    call even while the request iterator is still waiting for its next item. A failing
    iterator cancels the call (RST_STREAM CANCEL) and its error is raised."""
    sender = asyncio.ensure_future(send_all(call, requests))
    receiver = asyncio.ensure_future(call.recv_unary())
    try:
        await asyncio.wait([sender, receiver], return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and not receiver.done() and sender.exception() is not None:
            call.cancel("the request iterator failed")
            raise sender.exception()  # type: ignore[misc]
        # answered before every request was sent? gRPC drops the rest: ``finally`` cancels
        return await receiver
    finally:
        for task in (sender, receiver):
            if not task.done():
                task.cancel()
        await asyncio.wait([sender, receiver])  # our own cancellation still propagates
        for task in (sender, receiver):
            if not task.cancelled():
                task.exception()  # retrieved: what matters was raised above


class BidiStream(Generic[ReqT, RespT]):
    """A bidirectional call: ``send``/``done_writing`` and ``recv``/``async for``, usable from
    different tasks at once. Use it as an async context manager; leaving the block before the
    call finished cancels it (RST_STREAM CANCEL)."""

    def __init__(self, opener: Callable[[], Awaitable[ClientCall[ReqT, RespT]]]) -> None:
        self._opener = opener
        self._call: ClientCall[ReqT, RespT] | None = None
        self._opening: asyncio.Future[ClientCall[ReqT, RespT]] | None = None
        self._error: RpcError | None = None

    async def _get(self) -> ClientCall[ReqT, RespT]:
        if self._call is not None:
            return self._call
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._opener())
        self._call = await asyncio.shield(self._opening)
        return self._call

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
        if self._call is None and opening is not None:
            if not opening.done():
                opening.cancel()
                await asyncio.wait([opening])  # our own cancellation still propagates
            if not opening.cancelled() and opening.exception() is None:
                self._call = opening.result()
        if self._call is not None:
            if not self._call.done:
                self._call.cancel("stream closed before the call finished")
            self._call.close()

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
