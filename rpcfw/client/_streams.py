"""The bidirectional stream (a call object) and request pumping for streaming calls."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Generic, Self

from .._method import ReqT, RespT
from ..errors import RpcError
from ._call_api import ActiveCall
from ._call_objects import CallObject

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
    call: ActiveCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
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
        self, call: ActiveCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
    ) -> None:
        self.failure: Exception | None = None
        self._task = call.runtime.spawn(
            lambda: self._send(call, requests), "sending requests", report=False
        )

    async def _send(
        self, call: ActiveCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
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
    call: ActiveCall[ReqT, RespT], requests: Iterable[ReqT] | AsyncIterable[ReqT]
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


class BidiStream(CallObject[RespT], Generic[ReqT, RespT]):
    """A bidirectional call: ``send``/``done_writing`` and ``recv``/``async for``, usable from
    different tasks at once (one writer and any readers), plus the call's state
    (``initial_metadata``, ``trailing_metadata``, ``status``, ``peer``, ``cancel()``). Use it
    as an async context manager; leaving the block before the call finished cancels it
    (RST_STREAM CANCEL)."""

    async def __aenter__(self) -> Self:
        await self._get()  # opened now: headers sent, ``peer`` known
        return self

    async def send(self, message: ReqT) -> None:
        """Send one request message (opens the call if needed); raises the call's error once it was
        cancelled or ended with one."""
        if self._error is not None:  # cancelled, or ended with an error
            raise self._error
        call: ActiveCall[ReqT, RespT] = await self._get()
        await call.send(message)

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests follow."""
        if self._error is not None:
            raise self._error
        call: ActiveCall[ReqT, RespT] = await self._get()
        await call.end()

    async def recv(self) -> RespT | None:
        """The next response, or None when the server ended the call with OK (the call ended
        with an error: every later read raises it too)."""
        return await self._read(_recv_or_finish)

    def __aiter__(self) -> AsyncIterator[RespT]:
        return self

    async def __anext__(self) -> RespT:
        message = await self.recv()
        if message is None:
            raise StopAsyncIteration
        return message


async def _recv_or_finish(call: ActiveCall[Any, RespT]) -> RespT | None:
    message = await call.recv()
    if message is None:
        await call.finish()
    return message
