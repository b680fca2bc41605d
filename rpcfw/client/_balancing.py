"""BalancingCore: the resolver -> balancer -> subchannel -> picker machinery of one channel.

It is the balancer's helper (creates and removes subchannels, receives pickers) and the place
the call path asks for a ready subchannel. Every resolver update, subchannel state change and
timer reaches the balancer through ``_serialize``, one at a time and never re-entrantly, so
balancers need no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .._status import Status
from ..balancer.base import (
    Balancer,
    Cancellable,
    ConnectivityState,
    Endpoint,
    Picker,
    PickInfo,
    PickResult,
    SubchannelLike,
)
from ..errors import ChannelClosedError, RpcError
from ..policy.backoff import BackoffConfig
from ..resolver.base import Resolver
from ..resolver.registry import create_resolver
from ..resolver.target import Target
from ..transport import H2Config
from ._call import DEADLINE_EXCEEDED
from ._connection import ClientConnection
from ._subchannel import HealthCheck, Subchannel

__all__ = ["BalancingCore"]

log = logging.getLogger("rpcfw.client")

BalancerFactory = Callable[[Any], Balancer]


class BalancingCore:
    def __init__(
        self,
        target: Target,
        balancer_factory: BalancerFactory,
        backoff: BackoffConfig,
        health: HealthCheck | None = None,
    ) -> None:
        self._balancer_factory = balancer_factory
        self._backoff = backoff
        self._health = health
        self._config = H2Config()
        self._queue: deque[Callable[[], None]] = deque()
        self._running = False
        self._started = False
        self.closed = False
        self.balancer: Balancer | None = None
        self.resolver: Resolver | None = None
        self.subchannels: set[Subchannel] = set()
        self.picker: Picker | None = None
        self.state = ConnectivityState.IDLE
        self._picker_changed = asyncio.Event()
        self._resolver_error: str | None = None
        # the resolver is built now so a bad target fails at Channel(...), not on first call
        self.resolver = create_resolver(target, self._on_resolved)

    def set_health_check(self, health: HealthCheck) -> None:
        """Watch grpc.health.v1 on every subchannel created from now on."""
        self._health = health

    @property
    def authority(self) -> str:
        assert self.resolver is not None
        return self.resolver.authority

    def _start(self) -> None:
        self._started = True
        self.balancer = self._balancer_factory(self)
        assert self.resolver is not None
        self.resolver.start()

    # -- serialization -------------------------------------------------------------------
    def _serialize(self, fn: Callable[[], None]) -> None:
        self._queue.append(fn)
        if self._running:
            return
        self._running = True
        try:
            while self._queue:
                task = self._queue.popleft()
                if self.closed:
                    continue
                try:
                    task()
                except Exception:
                    log.exception("balancer update failed")
        finally:
            self._running = False

    def _on_resolved(self, update: Sequence[Endpoint] | Exception) -> None:
        def apply() -> None:
            assert self.balancer is not None
            if isinstance(update, Exception):
                self._resolver_error = f"resolver: {update}"
                self.balancer.resolver_error(update)
            else:
                self._resolver_error = None
                self.balancer.update_endpoints(list(update))

        self._serialize(apply)

    def _on_subchannel_state(self, subchannel: Subchannel, state: ConnectivityState) -> None:
        lost = state in (ConnectivityState.IDLE, ConnectivityState.TRANSIENT_FAILURE)
        if lost and self.resolver is not None:
            self.resolver.resolve_now()

        def apply() -> None:
            assert self.balancer is not None
            if subchannel in self.subchannels:
                self.balancer.update_subchannel_state(subchannel, state)

        self._serialize(apply)

    # -- BalancerHelper ------------------------------------------------------------------
    def create_subchannel(self, endpoint: Endpoint) -> SubchannelLike:
        subchannel = Subchannel(
            endpoint, self._config, self._backoff, self._on_subchannel_state, health=self._health
        )
        self.subchannels.add(subchannel)
        return subchannel

    def remove_subchannel(self, subchannel: SubchannelLike) -> None:
        assert isinstance(subchannel, Subchannel)
        self.subchannels.discard(subchannel)
        subchannel.shutdown(drain=True)

    def update_picker(self, state: ConnectivityState, picker: Picker) -> None:
        self.state = state
        self.picker = picker
        self._picker_changed.set()
        self._picker_changed = asyncio.Event()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, self._serialize, callback)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- the call path -------------------------------------------------------------------
    def _unavailable(self) -> RpcError:
        reasons = sorted({s.last_error for s in self.subchannels if s.last_error})
        if self._resolver_error:
            reasons.insert(0, self._resolver_error)
        if not self.subchannels and not reasons:
            reasons = ["no addresses resolved"]
        return RpcError(
            Status.UNAVAILABLE, "failed to connect to all endpoints: " + "; ".join(reasons)
        )

    async def pick(
        self, info: PickInfo, deadline: float | None, wait_for_ready: bool
    ) -> tuple[ClientConnection, PickResult]:
        """A ready connection for one call; waits for one (until ``deadline``) when none is
        ready, or fails fast with UNAVAILABLE when the channel is in TRANSIENT_FAILURE and the
        caller did not ask to wait."""
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise ChannelClosedError()
            picker = self.picker
            if picker is not None:
                result = picker.pick(info)
                if result is not None:
                    conn = getattr(result.subchannel, "connection", None)
                    if conn is not None and conn.ready:
                        return conn, result
                    if result.on_done is not None:
                        result.on_done(0.0, False)  # raced with a state change: pick again
                elif self.state is ConnectivityState.TRANSIENT_FAILURE and not wait_for_ready:
                    raise self._unavailable()
            changed = self._picker_changed
            try:
                if deadline is None:
                    await changed.wait()
                else:
                    await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED) from None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._picker_changed.set()  # wake waiting calls: they see the channel closed
        if self.balancer is not None:
            self.balancer.close()
        if self.resolver is not None:
            await self.resolver.close()
        for subchannel in list(self.subchannels):
            subchannel.shutdown(drain=False)
        for subchannel in list(self.subchannels):
            with contextlib.suppress(Exception):
                await subchannel.wait_closed()
        self.subchannels.clear()
