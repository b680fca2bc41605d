"""The state of a call under a retry or hedging policy (the base of ``RetryingCall`` and of
``FanOutState``, ``HedgedStreamCall``'s): what its users see of it (the current attempt's,
once the call is final), the kept request messages against the channel's retry buffer, the
commit, the throttle's outcome report, and ending it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Generic

import anyio

from .._clock import now
from .._guard import AnyioCallGuard, CallGuard, Guard
from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._runtime import ChannelRuntime
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata
from ..policy.retry import HedgingState, RetryBuffer, RetryState
from ._call import ClientCall
from ._call_api import ClosesOnExit
from ._retry import MethodPolicy

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["RetryingCallState"]


class RetryingCallState(ClosesOnExit, Generic[ReqT, RespT]):
    """A call made of attempts until it commits: its state (see ``_retry_stream.py``)."""

    def __init__(
        self,
        channel: Channel,
        policy: MethodPolicy,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        request: ReqT | None,
        deadline: float | None,
    ) -> None:
        self._channel, self._spec, self._options = channel, spec, options
        self._request, self._deadline = request, deadline
        config = policy.config
        self._retry = (
            None
            if config.retry_policy is None
            else RetryState(config.retry_policy, policy.throttle)
        )
        self._hedging = (
            None
            if config.hedging_policy is None
            else HedgingState(config.hedging_policy, policy.throttle)
        )
        self._buffer: RetryBuffer = channel._retry_buffer
        self._sent: list[ReqT] = []  # request messages kept for replay (until the commit)
        self._held = 0  # their bytes (reserved in the channel's buffer)
        self._end_sent = False
        self._call: ClientCall[ReqT, RespT] | None = None  # the current attempt
        self._attempts = 0  # attempts opened (or tried)
        self._committed = False
        self._final = False  # committed, or no attempt follows: the current one is the call
        self._counted = False  # the outcome was reported to the throttle
        self._first: RespT | None = None  # a hedged call's first message, not read yet
        self._switching: anyio.Event | None = None  # set when a new attempt is ready
        self._scope: anyio.CancelScope | None = None  # around backoffs and openings
        self._cancelled: RpcError | None = None
        runtime = channel._core.ensure_runtime()
        self._runtime = runtime
        self._guard: Guard = AnyioCallGuard() if runtime.anyio else CallGuard()
        # a call's one request (server streaming, unary_call) is not counted in the buffer:
        # the caller holds that object anyway, as with the unary stub's retries

    # -- state -------------------------------------------------------------------------------
    @property
    def guard(self) -> Guard:
        """The current attempt's guard (holds a deadline or cancellation that ended it)."""
        if self._cancelled is not None or self._call is None:
            return self._guard
        return self._call.guard

    @property
    def done(self) -> bool:
        return self._final and self._call is not None and self._call.done

    @property
    def ended(self) -> bool:
        if self._cancelled is not None:
            return True
        return self._final and self._call is not None and self._call.ended

    @property
    def answered(self) -> bool:
        return self._final and self._call is not None and self._call.answered

    @property
    def peer(self) -> str | None:
        return None if self._call is None else self._call.peer

    @property
    def runtime(self) -> ChannelRuntime:
        return self._runtime

    @property
    def initial_metadata(self) -> Metadata | None:
        return self._call.initial_metadata if self._final and self._call is not None else None

    @property
    def trailing_metadata(self) -> Metadata | None:
        return self._call.trailing_metadata if self._final and self._call is not None else None

    # -- commit and buffer -------------------------------------------------------------------
    def _keep(self, message: ReqT) -> bool:
        """Keep ``message`` for replay if the buffer limits allow it."""
        size = len(message.SerializeToString())
        if not self._buffer.reserve(self._held, size):
            return False
        self._held += size
        self._sent.append(message)
        return True

    def _commit(self) -> None:
        """No more attempts: free the kept messages."""
        self._committed = self._final = True
        self._sent = []
        self._buffer.release(self._held)
        self._held = 0

    def _give_up(self) -> None:
        """No attempt follows the failed one (already counted by the retry state): the call
        ends with its failure."""
        self._counted = True
        self._commit()

    def _report(self, error: RpcError | None) -> None:
        """The committed call ended: OK gives the throttle back a token share, a retryable
        status takes one (A6 counts every attempt's outcome)."""
        if self._counted:
            return
        self._counted = True
        state = self._retry if self._retry is not None else self._hedging
        if state is None:
            return
        if error is None:
            state.on_success()
        elif self._retry is not None:
            self._retry.on_failure(error.status, committed=True)

    # -- attempts ----------------------------------------------------------------------------
    def _remaining(self) -> float:
        return math.inf if self._deadline is None else self._deadline - now()

    # -- ending ------------------------------------------------------------------------------
    def cancel(self, message: str = "cancelled by the client") -> None:
        """End the call now, in whatever attempt or backoff it is."""
        if self.done or self._cancelled is not None:
            return
        self._cancelled = error = RpcError(Status.CANCELLED, message)
        self._guard.cancel(error)
        if self._scope is not None:
            self._scope.cancel()
        if self._call is not None:
            self._call.cancel(message)

    def close(self, error: BaseException | None = None) -> None:
        if not self._committed:
            self._commit()
        if self._call is not None:
            self._call.close(error)
        self._guard.close()
