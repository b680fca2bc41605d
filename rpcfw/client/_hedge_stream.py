"""Client-streaming and bidi calls under a hedging policy (gRFC A6).

A ``HedgedStreamCall`` stands for the call while its attempts race. The race runs in a task of
the channel's runtime that the call owns (``hedge()`` of ``_attempts.py``, as for unary and
server-streaming calls): the first attempt starts at once, the next one ``hedgingDelay`` later
(at once after a non-fatal failure, or after the server's pushback) while fewer than
``maxAttempts`` were started, none has committed and throttling allows it. It runs whether or
not the application reads.

Every request message the application sends goes to every open attempt; the call keeps them
(within the channel's retry buffer) and an attempt that starts later gets them all first, in
order, and the half-close if it was sent, before it joins the open ones (``_hedge_fanout.py``).

The call commits to the first attempt whose first response message arrives or that ends OK,
as server-streaming hedging does (response headers alone do not commit: a status after them
with no message is a failure of that attempt). The others are then cancelled (RST_STREAM
CANCEL) and awaited before any read returns; later sends go to the winner only. A fatal status
(not in ``nonFatalStatusCodes``) ends the call with it; when every attempt failed non-fatally
and no more may start, the last failure is the call's. Reads (``recv``, ``finish``,
``recv_initial_metadata``) wait for that outcome, so the response metadata is the winner's.

Buffer limits: a message that would pass the per-call or the channel's limit before the commit
stops hedging (no new attempt; the open ones go on and get every message) and frees the kept
messages; an attempt still being opened then can no longer be given them and withdraws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._runtime import TaskHandle
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ._attempts import PREVIOUS_ATTEMPTS, Withdrawn, hedge
from ._call import ClientCall
from ._call_api import receive_unary
from ._hedge_fanout import FanOutAttempt, FanOutState
from ._retry import MethodPolicy

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["HedgedStreamCall"]


class HedgedStreamCall(FanOutState[ReqT, RespT]):
    """A client-streaming or bidi call whose attempts are hedged (see the module's
    docstring)."""

    def __init__(
        self,
        channel: Channel,
        policy: MethodPolicy,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        deadline: float | None,
    ) -> None:
        super().__init__(channel, policy, spec, options, deadline)
        self._driver: TaskHandle | None = None
        self._settled = self._runtime.event()  # an attempt joined, or the race ended

    # -- the race --------------------------------------------------------------------------------
    async def open(self) -> None:
        """Start the race; return once an attempt is open (or raise how the race ended)."""
        self._driver = self._runtime.spawn(self._drive, "hedging a call", report=False)
        try:
            await self._settled.wait()
        except BaseException as exc:  # the caller's cancellation: it propagates
            self.close(exc)
            with anyio.CancelScope(shield=True):
                await self._driver.wait()  # cancelled: it ends at once, closing its attempts
            raise
        if self._failure is not None:
            self.close(self._failure)
            raise self._failure

    async def _drive(self) -> None:
        assert self._hedging is not None
        try:
            call, first = await hedge(self._hedging, self._attempt, self._remaining, self._discard)
        except Exception as exc:  # every attempt's failure was counted for throttling
            self._failure = exc
            self._counted = True
        else:
            self._winner = self._call = call
            self._first = first
            self._open = [record for record in self._open if record.call is call]
            if self._cancelled is not None:  # cancel() came as the race ended
                call.cancel(self._cancelled.message or "cancelled by the client")
        finally:
            if not self._committed:
                self._commit()
            self._settled.set()

    async def _attempt(self, previous: int) -> tuple[ClientCall[ReqT, RespT], RespT | None]:
        """One hedged attempt: open it, give it every message sent so far, then read until
        it commits (its first message, or an OK end)."""
        self._attempts = max(self._attempts, previous + 1)
        extra = [(PREVIOUS_ATTEMPTS, str(previous))] if previous else []
        call = await self._channel._open(
            self._spec, self._options, None, False, self._deadline, extra
        )
        record = FanOutAttempt(call)
        try:
            async with self._turn:
                if self._base:  # some messages were freed (buffer limit): it cannot have them
                    raise Withdrawn()
                await self._catch_up(record)
                self._open.append(record)
            if self._call is None:
                self._call = call  # the peer shown until the commit
            self._settled.set()
            message = await call.recv()
            if message is None:
                await call.finish()  # a status before any message: not committed
        except BaseException as exc:
            self._leave(record)
            call.close(exc)
            raise
        return call, message

    def _leave(self, record: FanOutAttempt[ReqT, RespT]) -> None:
        if record in self._open:
            self._open.remove(record)

    def _discard(self, result: tuple[ClientCall[ReqT, RespT], RespT | None]) -> None:
        """An attempt that committed an instant after the winner: cancel and release it."""
        call = result[0]
        for record in list(self._open):
            if record.call is call:
                self._leave(record)
        call.cancel("another hedged attempt committed first")
        call.close()

    # -- receiving: the winner, once the race is over -------------------------------------------
    async def _outcome(self) -> ClientCall[ReqT, RespT]:
        driver = self._driver
        if driver is not None and not driver.done():
            await driver.wait()  # the losers are cancelled and awaited by then
        self._raise_if_over()
        assert self._winner is not None
        return self._winner

    async def recv(self) -> RespT | None:
        call = await self._outcome()
        first, self._first = self._first, None
        if first is not None:
            return first
        message = await call.recv()
        if message is None:
            await call.finish()
            self._report(None)  # ended OK
        return message

    async def finish(self) -> None:
        call = await self._outcome()
        await call.finish()
        self._report(None)

    async def recv_initial_metadata(self) -> Metadata:
        call = await self._outcome()
        return await call.recv_initial_metadata()

    async def recv_unary(self) -> RespT:
        """A unary response: exactly one message, then an OK status."""
        return await receive_unary(self)

    # -- ending ----------------------------------------------------------------------------------
    def cancel(self, message: str = "cancelled by the client") -> None:
        """End the call now: every attempt (and the race) is cancelled."""
        if self.done or self._cancelled is not None:
            return
        self._cancelled = RpcError(Status.CANCELLED, message)
        self._guard.cancel(self._cancelled)
        self._stop_race(message)
        if self._winner is not None:
            self._winner.cancel(message)

    def _stop_race(self, message: str) -> None:
        driver = self._driver
        if driver is not None and not driver.done():
            for record in self._open:
                record.call.cancel(message)
            driver.cancel()  # its attempts close their calls as they end

    def close(self, error: BaseException | None = None) -> None:
        """Release the call: a race still running is cancelled (it ends at its next step,
        closing its attempts; a synchronous close cannot wait for it), the winner closed."""
        self._stop_race("the call was closed")
        if not self._committed:
            self._commit()
        if self._winner is not None:
            self._winner.close(error)
        self._guard.close()
