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
from ..policy.retry import HedgingState, RetryState, RetryThrottle
from ..policy.service_config import MethodConfig, ServiceConfig
from ._attempts import PREVIOUS_ATTEMPTS, Committed, deadline_error, hedge, pushback_of

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["MethodPolicy", "call_deadline", "method_policy", "unary_with_policy"]


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    """What the service config says for one method, resolved once per channel and path."""

    config: MethodConfig
    throttle: RetryThrottle | None


def call_deadline(deadline: float | None, config: MethodConfig) -> float | None:
    """The earlier of the call's own deadline and the method config's ``timeout``."""
    if config.timeout is None:
        return deadline
    own = now() + config.timeout
    return own if deadline is None else min(deadline, own)


def method_policy(
    service_config: ServiceConfig, spec: MethodSpec[Any, Any], throttle: RetryThrottle | None
) -> MethodPolicy | None:
    """The policy for ``spec``, or None when nothing applies (the fast path). Retry and
    hedging policies are dropped for a method not declared idempotent (IDEMPOTENT or
    NO_SIDE_EFFECTS) unless its config says ``retryNonIdempotent``; its timeout still applies."""
    config = service_config.method_config(spec.path)
    if config is None:
        return None
    retries = config.retry_policy is not None or config.hedging_policy is not None
    if retries and not (spec.idempotent or config.retry_non_idempotent):
        config = replace(config, retry_policy=None, hedging_policy=None)
    if config.retry_policy is None and config.hedging_policy is None and config.timeout is None:
        return None
    return MethodPolicy(config, throttle)


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
                raise Committed(exc) from None
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
    deadline = call_deadline(deadline, config)
    attempts = _Attempts(channel, spec, request, options, deadline)
    if config.hedging_policy is not None:
        hedging = HedgingState(config.hedging_policy, policy.throttle)
        response = await hedge(hedging, attempts.run, attempts.remaining)
        hedging.on_success()
        return response
    if config.retry_policy is None:  # a timeout only
        return await attempts.run(0)
    state = RetryState(config.retry_policy, policy.throttle, random=random)
    while True:
        try:
            response = await attempts.run(state.attempts - 1)
        except Committed as committed:
            state.on_failure(committed.error.status, committed=True)  # throttling counts it
            raise committed.error from None
        except RpcError as exc:  # before any response message: not committed
            decision = state.on_failure(exc.status, pushback_of(exc))
            if not decision.retry:
                raise
            remaining = attempts.remaining()
            if decision.delay >= remaining:  # the deadline comes first: wait for it
                await anyio.sleep(max(0.0, remaining))
                raise deadline_error() from exc
            await anyio.sleep(decision.delay)
            continue
        state.on_success()
        return response
