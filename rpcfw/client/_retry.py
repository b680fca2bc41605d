"""Unary calls under a service-config retry or hedging policy (gRFC A6).

Each attempt is a fresh pick and a fresh stream (through ``Channel._open``, so the
transparent retry of a refused stream still applies inside an attempt); the request object is
kept and re-sent; attempts after the first carry ``grpc-previous-rpc-attempts``. The call's
deadline covers every attempt and every backoff. A unary call commits once its response
message arrived: a failure after that (a bad status in the trailers) is never retried.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic

import anyio

from .._clock import now
from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._status import Status
from ..errors import RpcError
from ..policy.retry import (
    PUSHBACK_HEADER,
    HedgingState,
    Pushback,
    RetryState,
    RetryThrottle,
    parse_pushback,
)
from ..policy.service_config import MethodConfig, ServiceConfig
from ._call import DEADLINE_EXCEEDED

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["MethodPolicy", "method_policy", "unary_with_policy"]

PREVIOUS_ATTEMPTS = "grpc-previous-rpc-attempts"


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    """What the service config says for one method, resolved once per channel and path."""

    config: MethodConfig
    throttle: RetryThrottle | None


def method_policy(
    service_config: ServiceConfig, spec: MethodSpec[Any, Any], throttle: RetryThrottle | None
) -> MethodPolicy | None:
    """The policy for ``spec``, or None when nothing applies (the fast path). Retry and
    hedging policies are dropped for a method not declared idempotent (IDEMPOTENT or
    NO_SIDE_EFFECTS) unless its config says ``retryNonIdempotent``; its timeout still applies.
    Only unary-unary methods get retries and hedging for now."""
    config = service_config.method_config(spec.path)
    if config is None:
        return None
    retries = config.retry_policy is not None or config.hedging_policy is not None
    if retries and (
        spec.cardinality.client_streaming
        or spec.cardinality.server_streaming
        or not (spec.idempotent or config.retry_non_idempotent)
    ):
        config = replace(config, retry_policy=None, hedging_policy=None)
    if config.retry_policy is None and config.hedging_policy is None and config.timeout is None:
        return None
    return MethodPolicy(config, throttle)


def _pushback(error: RpcError) -> Pushback | None:
    metadata = error.trailing_metadata
    if metadata is None:
        return None
    return parse_pushback([str(v) for v in metadata.get_all(PUSHBACK_HEADER)])


def _deadline_error() -> RpcError:
    return RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)


class _Committed(Exception):
    """An attempt failed after its response message arrived: the call is committed to it."""

    def __init__(self, error: RpcError) -> None:
        super().__init__(error)
        self.error = error


class _Attempts(Generic[ReqT, RespT]):
    """Runs attempts of one unary call."""

    __slots__ = ("channel", "deadline", "options", "request", "spec")

    def __init__(
        self,
        channel: Channel,
        spec: MethodSpec[ReqT, RespT],
        request: ReqT,
        options: CallOptions,
        deadline: float | None,
    ) -> None:
        self.channel, self.spec, self.request = channel, spec, request
        self.options, self.deadline = options, deadline

    async def run(self, previous: int) -> RespT:
        """One attempt; ``previous`` attempts were made before it."""
        extra = [(PREVIOUS_ATTEMPTS, str(previous))] if previous else []
        call = await self.channel._open(
            self.spec, self.options, self.request, True, self.deadline, extra
        )
        with call:
            message = await call.recv()
            if message is None:
                await call.finish()  # a status before any message: not committed
                raise RpcError(Status.UNIMPLEMENTED, "server sent no response message")
            try:
                await call.finish()
            except RpcError as exc:
                raise _Committed(exc) from None
            return message

    def remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - now()


async def unary_with_policy(
    channel: Channel,
    policy: MethodPolicy,
    spec: MethodSpec[ReqT, RespT],
    request: ReqT,
    options: CallOptions,
    deadline: float | None,
    *,
    random: Callable[[], float] = _random.random,
) -> RespT:
    config = policy.config
    if config.timeout is not None:
        own = now() + config.timeout
        deadline = own if deadline is None else min(deadline, own)
    attempts = _Attempts(channel, spec, request, options, deadline)
    if config.hedging_policy is not None:
        return await _hedged(attempts, HedgingState(config.hedging_policy, policy.throttle))
    if config.retry_policy is None:  # a timeout only
        return await attempts.run(0)
    state = RetryState(config.retry_policy, policy.throttle, random=random)
    while True:
        try:
            response = await attempts.run(state.attempts - 1)
        except _Committed as committed:
            state.on_failure(committed.error.status, committed=True)  # throttling counts it
            raise committed.error from None
        except RpcError as exc:  # before any response message: not committed
            decision = state.on_failure(exc.status, _pushback(exc))
            if not decision.retry:
                raise
            remaining = attempts.remaining()
            if decision.delay >= remaining:  # the deadline comes first: wait for it
                await anyio.sleep(max(0.0, remaining))
                raise _deadline_error() from exc
            await anyio.sleep(decision.delay)
            continue
        state.on_success()
        return response


async def _hedged(attempts: _Attempts[ReqT, RespT], state: HedgingState) -> RespT:
    """Start attempts ``hedgingDelay`` apart (at once after a non-fatal failure, or after the
    server's pushback) until one answers OK or fatally; the others are then cancelled
    (RST_STREAM CANCEL). Without a winner, the last failure is raised."""
    delay = state.policy.hedging_delay
    result: list[RespT] = []
    errors: list[RpcError] = []
    fatal: list[Exception] = []
    wake = anyio.Event()
    start_at = [now()]
    running = [0]

    async def attempt(previous: int) -> None:
        try:
            response = await attempts.run(previous)
        except _Committed as committed:  # an answer, even if a failed one: it wins
            state.stopped = True
            fatal.append(committed.error)
        except RpcError as exc:
            is_fatal, pushback_delay = state.on_failure(exc.status, _pushback(exc))
            (fatal if is_fatal else errors).append(exc)
            start_at[0] = now() + pushback_delay
        except Exception as exc:  # not a status (a bad metadata value, say): it ends the call
            state.stopped = True
            fatal.append(exc)
        else:
            state.on_success()
            result.append(response)
        finally:
            running[0] -= 1
            wake.set()

    async with anyio.create_task_group() as group:
        while not result and not fatal:
            remaining = attempts.remaining()
            may_start = remaining > 0 and state.can_start()
            if may_start and now() >= start_at[0]:
                previous = state.started
                state.on_started()
                running[0] += 1
                group.start_soon(attempt, previous)
                start_at[0] = now() + delay
                may_start = state.can_start()
            if running[0] == 0 and not may_start:
                break  # nothing runs and nothing more may start
            # the attempts end by themselves at the deadline: past it, wait for them only
            wait = max(0.0, start_at[0] - now()) if may_start else math.inf
            with anyio.move_on_after(min(wait, remaining) if remaining > 0 else math.inf):
                await wake.wait()
            if wake.is_set():
                wake = anyio.Event()
        group.cancel_scope.cancel()
    if result:
        return result[0]
    if fatal:
        raise fatal[0]
    if errors:
        raise errors[-1]
    raise _deadline_error()
