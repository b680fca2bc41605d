"""Streaming calls and call objects under a service-config retry or hedging policy (gRFC A6).

A ``RetryingCall`` stands for the call while its attempts come and go: each attempt is a
``ClientCall`` of its own (a fresh pick and stream through ``Channel._open``, with
``grpc-previous-rpc-attempts`` after the first). Until the call **commits**, a failed attempt
is retried as the unary path does (retryable status, attempts left, throttling, pushback,
backoff, one deadline over all attempts) and the new attempt gets the request (server
streaming, ``unary_call``) or every request message sent so far, replayed in order, and the
half-close if it was sent. The call commits when the first response message arrives, when
the application reads the response metadata, when it ends OK, or when keeping the sent
messages would pass the channel's retry buffer limits; after that it is the one attempt.

Retries are driven by the reader (one at a time: the call objects and stub paths read from one
task): an operation that fails before the commit closes that attempt, backs off and opens the
next. A writer whose attempt failed keeps the message buffered (the next attempt gets it);
writers wait while an attempt is being replaced. Calls with one request (server streaming,
``unary_call``) are hedged here: the attempts race until one commits (its first message, or
its OK end), in ``open()``. Client-streaming and bidi calls are hedged by a
``HedgedStreamCall`` (``_hedge_stream.py``), whose attempts race while the application writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._attempts import PREVIOUS_ATTEMPTS, deadline_error, hedge, pushback_of
from ._call import ClientCall
from ._call_api import ActiveCall, receive_unary
from ._hedge_stream import HedgedStreamCall
from ._retry import MethodPolicy, call_deadline
from ._retry_state import RetryingCallState

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["RetryingCall", "open_with_policy"]

T = TypeVar("T")


async def open_with_policy(
    channel: Channel,
    policy: MethodPolicy,
    spec: MethodSpec[ReqT, RespT],
    options: CallOptions,
    request: ReqT | None,
    deadline: float | None,
) -> ActiveCall[ReqT, RespT]:
    """Open a call whose method has a config: ``request`` for the kinds with one request
    (None: the application streams them). A config with only a ``timeout`` gives a plain call
    with that deadline."""
    config = policy.config
    deadline = call_deadline(deadline, config)
    if config.retry_policy is None and config.hedging_policy is None:
        return await channel._open(spec, options, request, request is not None, deadline)
    if config.hedging_policy is not None and request is None:  # client streaming, bidi
        hedged = HedgedStreamCall(channel, policy, spec, options, deadline)
        await hedged.open()
        return hedged
    call = RetryingCall(channel, policy, spec, options, request, deadline)
    await call.open()
    return call


async def _recv(call: ClientCall[Any, RespT]) -> RespT | None:
    """The next message; at the end, the status too (an error raised from here is retried as
    a whole: the next attempt's messages are read from its start)."""
    message = await call.recv()
    if message is None:
        await call.finish()
    return message


async def _finish(call: ClientCall[Any, Any]) -> None:
    await call.finish()


async def _initial_metadata(call: ClientCall[Any, Any]) -> Metadata:
    return await call.recv_initial_metadata()


class RetryingCall(RetryingCallState[ReqT, RespT]):
    """One call made of attempts until it commits (see the module's docstring)."""

    async def _open_attempt(self) -> ClientCall[ReqT, RespT]:
        previous, self._attempts = self._attempts, self._attempts + 1
        extra = [(PREVIOUS_ATTEMPTS, str(previous))] if previous else []
        request = self._request
        return await self._channel._open(
            self._spec, self._options, request, request is not None, self._deadline, extra
        )

    async def _interruptible(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` where ``cancel()`` can stop it (it then raises the cancellation)."""
        if self._cancelled is not None:
            raise self._cancelled
        scope = self._scope = anyio.CancelScope()
        try:
            with scope:
                return await work()
        finally:
            self._scope = None
        # only our own cancel() is caught here (the caller's cancellation propagates)
        raise self._cancelled or RpcError(Status.CANCELLED, "cancelled by the client")

    async def open(self) -> None:
        """Open the first attempt (hedging: race attempts until one commits)."""
        if self._hedging is not None:
            call, first = await self._interruptible(self._race)
            self._call, self._first = call, first
            self._commit()
            return
        await self._next_attempt(None)

    async def _race(self) -> tuple[ClientCall[ReqT, RespT], RespT | None]:
        assert self._hedging is not None
        return await hedge(self._hedging, self._hedge_attempt, self._remaining, _close_attempt)

    async def _hedge_attempt(self, previous: int) -> tuple[ClientCall[ReqT, RespT], RespT | None]:
        """One hedged attempt, until it commits (its first message, or an OK end)."""
        self._attempts = max(self._attempts, previous + 1)
        extra = [(PREVIOUS_ATTEMPTS, str(previous))] if previous else []
        call = await self._channel._open(
            self._spec, self._options, self._request, True, self._deadline, extra
        )
        try:
            message = await call.recv()
            if message is None:
                await call.finish()  # a status before any message: not committed
        except BaseException as exc:
            call.close(exc)
            raise
        return call, message

    async def _next_attempt(self, failed: RpcError | None) -> None:
        """Replace the current attempt (which ended with ``failed``; None: open the first):
        back off, open the next one and replay the kept messages. Raises the failure when
        no attempt follows. Writers wait meanwhile."""
        switching = self._switching = anyio.Event()
        try:
            error = failed
            while True:
                if error is not None:
                    await self._back_off(error)
                try:
                    call = await self._interruptible(self._open_attempt)
                except RpcError as exc:
                    if self._committed or self._retry is None:
                        self._give_up()
                        raise
                    error = exc
                    continue
                self._call = call
                await self._replay(call)
                return
        finally:
            self._switching = None
            switching.set()

    async def _back_off(self, error: RpcError) -> None:
        """Wait before the next attempt, or raise ``error`` if none follows."""
        state = self._retry
        if state is None or self._committed or self._cancelled is not None:
            self._give_up()
            raise error
        decision = state.on_failure(error.status, pushback_of(error))
        if not decision.retry:
            self._give_up()
            raise error
        remaining = self._remaining()
        await self._interruptible(lambda: anyio.sleep(max(0.0, min(decision.delay, remaining))))
        if decision.delay >= remaining:  # the deadline came first
            self._give_up()
            raise deadline_error() from error

    async def _replay(self, call: ClientCall[ReqT, RespT]) -> None:
        """Send the kept messages (and the half-close) to a new attempt. If it fails, the
        reader sees its status."""
        if self._request is not None:
            return  # sent when the attempt opened
        sent, index = self._sent, 0
        try:
            while index < len(sent):
                await call.send(sent[index])
                index += 1
            if self._end_sent:
                await call.end()
        except RpcError:
            if not call.ended:
                raise

    async def _read(self, op: Callable[[ClientCall[ReqT, RespT]], Awaitable[T]]) -> T:
        """Run a read on the current attempt; before the commit, a failure is retried."""
        while True:
            call = self._call
            assert call is not None
            try:
                return await op(call)
            except RpcError as exc:
                if self._final or self._cancelled is not None:
                    if self._committed:
                        self._report(exc)
                    raise
                call.close(exc)  # wakes a writer waiting on it
                await self._next_attempt(exc)

    # -- receiving ---------------------------------------------------------------------------
    async def recv(self) -> RespT | None:
        first, self._first = self._first, None
        if first is not None:
            return first
        message = await self._read(_recv)
        if not self._committed:
            self._commit()
        if message is None:
            self._report(None)  # ended OK
        return message

    async def finish(self) -> None:
        await self._read(_finish)
        if not self._committed:
            self._commit()
        self._report(None)

    async def recv_initial_metadata(self) -> Metadata:
        metadata = await self._read(_initial_metadata)
        if not self._committed:
            self._commit()  # the application saw this attempt's answer
        return metadata

    async def recv_unary(self) -> RespT:
        """A unary response: exactly one message, then an OK status."""
        return await receive_unary(self)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, message: ReqT, *, end: bool = False) -> None:
        if self._end_sent:
            raise RpcError(Status.INTERNAL, "cannot send after done_writing()")
        while self._switching is not None:  # a new attempt is being opened and replayed
            await self._switching.wait()
        if not self._committed and not self._keep(message):
            self._commit()  # past the buffer limits: this attempt is the call
        self._end_sent = end
        await self._write(lambda call: call.send(message, end=end))

    async def end(self) -> None:
        if self._end_sent:
            return
        while self._switching is not None:
            await self._switching.wait()
        self._end_sent = True
        await self._write(lambda call: call.end())

    async def _write(self, write: Callable[[ClientCall[ReqT, RespT]], Awaitable[None]]) -> None:
        call = self._call
        assert call is not None
        try:
            await write(call)
        except RpcError:
            if self._final or not call.ended:
                raise
            # the attempt ended before the commit: the reader retries it with this message


def _close_attempt(result: tuple[ClientCall[Any, Any], object]) -> None:
    result[0].cancel("another hedged attempt committed first")
    result[0].close()
