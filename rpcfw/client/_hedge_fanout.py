"""The writing side of a hedged client-streaming or bidi call (``HedgedStreamCall``'s base,
``_hedge_stream.py``): the open attempts, the request messages kept for the attempts that start
later (within the channel's retry buffer), giving every open attempt every message in one
order, and the call's state as its users see it (the winner's, once there is one).

Writers and replays take turns (one lock), so every attempt sees the messages in the same
order; each attempt counts what it got, so a writer cancelled halfway leaves the rest to the
next turn and no attempt gets a message twice. Once no attempt may start any more (the
commit, or the buffer limit passed), the kept messages are freed as soon as every open attempt
has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic

import anyio

from .._guard import Guard
from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._call import ClientCall
from ._retry import MethodPolicy
from ._retry_state import RetryingCallState

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["FanOutAttempt", "FanOutState"]


class FanOutAttempt(Generic[ReqT, RespT]):
    """An open attempt and how many request messages (and whether the half-close) it got."""

    __slots__ = ("call", "delivered", "ended")

    def __init__(self, call: ClientCall[ReqT, RespT]) -> None:
        self.call = call
        self.delivered = 0  # the index (in the whole request stream) of its next message
        self.ended = False


class FanOutState(RetryingCallState[ReqT, RespT]):
    """A hedged streaming call's open attempts, kept messages and state (see the module's
    docstring)."""

    def __init__(
        self,
        channel: Channel,
        policy: MethodPolicy,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        deadline: float | None,
    ) -> None:
        super().__init__(channel, policy, spec, options, None, deadline)
        self._open: list[FanOutAttempt[ReqT, RespT]] = []  # joined: they got every message
        self._base = 0  # messages dropped from the front of ``_sent`` (every attempt had them)
        self._keeping = True  # within the buffer limits: new attempts may still start
        self._turn = anyio.Lock()  # writers and replays take turns
        self._winner: ClientCall[ReqT, RespT] | None = None
        self._failure: Exception | None = None  # how the race ended without a winner

    # -- state: the winner's, once there is one --------------------------------------------------
    @property
    def guard(self) -> Guard:
        """The winner's guard, else the call's own (it holds a ``cancel()``)."""
        if self._cancelled is not None or self._winner is None:
            return self._guard
        return self._winner.guard

    @property
    def done(self) -> bool:
        return self._winner is not None and self._winner.done

    @property
    def ended(self) -> bool:
        if self._cancelled is not None or self._failure is not None:
            return True
        return self._winner is not None and self._winner.ended

    @property
    def answered(self) -> bool:
        if self._failure is not None:
            return True  # every attempt has its outcome: the call's is known
        return self._winner is not None and self._winner.answered

    @property
    def initial_metadata(self) -> Metadata | None:
        return None if self._winner is None else self._winner.initial_metadata

    @property
    def trailing_metadata(self) -> Metadata | None:
        return None if self._winner is None else self._winner.trailing_metadata

    # -- the kept messages -----------------------------------------------------------------------
    def _commit(self) -> None:
        """No attempt starts any more: free the kept messages (those every open attempt got)."""
        self._committed = self._final = True
        self._stop_keeping()

    def _stop_keeping(self) -> None:
        self._keeping = False
        if self._hedging is not None:
            self._hedging.stopped = True
        self._buffer.release(self._held)
        self._held = 0
        self._trim()

    def _trim(self) -> None:
        if self._keeping:
            return
        end = self._base + len(self._sent)
        low = min((record.delivered for record in self._open), default=end)
        del self._sent[: low - self._base]
        self._base = low

    async def _catch_up(self, record: FanOutAttempt[ReqT, RespT]) -> None:
        """Give ``record`` the messages (and the half-close) it has not had yet. A failure of
        an attempt that has ended is its reader's business (the race sees its status)."""
        call = record.call
        try:
            while record.delivered < self._base + len(self._sent):
                message = self._sent[record.delivered - self._base]
                record.delivered += 1  # counted before the write: never sent twice
                await call.send(message)
            if self._end_sent and not record.ended:
                record.ended = True
                await call.end()
        except RpcError:
            if call is self._winner or not call.ended:
                raise

    async def _fan_out(self) -> None:
        for record in list(self._open):
            if record in self._open:
                await self._catch_up(record)
        self._trim()

    # -- sending ---------------------------------------------------------------------------------
    def _raise_if_over(self) -> None:
        if self._cancelled is not None:
            raise self._cancelled
        if self._failure is not None:
            raise self._failure

    async def send(self, message: ReqT, *, end: bool = False) -> None:
        if self._end_sent:
            raise RpcError(Status.INTERNAL, "cannot send after done_writing()")
        self._raise_if_over()
        async with self._turn:
            if not (self._keeping and self._keep(message)):
                if self._keeping:  # past the buffer limits before the commit: stop hedging
                    self._stop_keeping()
                self._sent.append(message)
            self._end_sent = end
            await self._fan_out()

    async def end(self) -> None:
        if self._end_sent:
            return
        self._raise_if_over()
        async with self._turn:
            self._end_sent = True
            await self._fan_out()
