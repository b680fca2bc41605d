"""BalancingCore: the resolver -> balancer -> subchannel -> picker machinery of one channel.

It is the balancer's helper (creates and removes subchannels, receives pickers) and the place
the call path asks for a ready subchannel. Every resolver update, subchannel state change and
timer reaches the balancer through ``_serialize``, one at a time and never re-entrantly, so
balancers need no locks.

Every pick also starts the connections that subchannels deferred after losing theirs (they wait
IDLE for a call, as gRPC's idle channel does); so does ``try_to_connect`` (the channel's
``get_state(try_to_connect=True)``). ``state`` is the balancer's aggregate state (SHUTDOWN once
closed); ``wait_for_state_change`` waits for it to differ from a state seen before.

``close`` shuts down every subchannel it ever made, the ones the balancer removed and left
draining included, and waits for their tasks and connections; cancelling a caller of ``close``
stops only its wait.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import anyio.abc

from .._clock import Cancellable
from .._runtime import (
    AnyioRuntime,
    AsyncioRuntime,
    ChannelRuntime,
    EventLike,
    TaskHandle,
    on_asyncio,
)
from .._status import Status
from ..balancer.base import (
    Balancer,
    ConnectivityState,
    Picker,
    PickInfo,
    PickResult,
    SubchannelLike,
)
from ..endpoint import Endpoint
from ..errors import ChannelClosedError, RpcError
from ..policy.backoff import BackoffConfig
from ..resolver.base import Resolver, ServiceConfigListener
from ..resolver.schemes import create_resolver
from ..resolver.target import Target
from ._call import DEADLINE_EXCEEDED
from ._connection import ClientConnection, ConnectionOptions
from ._subchannel import HealthCheck, Subchannel

__all__ = ["BalancingCore"]

log = logging.getLogger("rpcfw.client")

#: how long ``close`` lets connections say goodbye (GOAWAY, socket close) before aborting them
_CLOSE_GRACE = 5.0

BalancerFactory = Callable[[Any], Balancer]


class _Done:
    """The closing of a channel that never started anything."""

    def cancel(self) -> None:
        pass

    def done(self) -> bool:
        return True

    def error(self) -> BaseException | None:
        return None

    async def wait(self) -> None:
        pass


_NOTHING_TO_WAIT_FOR = _Done()


class BalancingCore:
    def __init__(
        self,
        target: Target,
        balancer_factory: BalancerFactory,
        backoff: BackoffConfig,
        health: HealthCheck | None = None,
        options: ConnectionOptions | None = None,
        config_listener: ServiceConfigListener | None = None,
    ) -> None:
        self._balancer_factory = balancer_factory
        self._backoff = backoff
        self._health = health
        self._config = options or ConnectionOptions()
        self._queue: deque[Callable[[], None]] = deque()
        self._running = False
        self._started = False
        self.closed = False
        self.balancer: Balancer | None = None
        self.resolver: Resolver | None = None
        self.subchannels: set[Subchannel] = set()
        self._draining: set[Subchannel] = set()  # removed by the balancer, not closed yet
        self._deferred: set[Subchannel] = set()  # IDLE, waiting for a call to connect
        self._closing: TaskHandle | None = None
        self.picker: Picker | None = None
        self.state = ConnectivityState.IDLE
        self.runtime: ChannelRuntime | None = None  # chosen by the first call
        #: the task group of ``async with Channel(...)`` (needed on backends other than asyncio)
        self.task_group: anyio.abc.TaskGroup | None = None
        self._picker_changed: EventLike | None = None
        #: set (and dropped) when ``state`` changes; made by the first waiter
        self._state_changed: EventLike | None = None
        self._resolver_error: str | None = None
        #: the resolver reported once (endpoints or an error): its service config, if it has
        #: one, arrived before (see ``wait_resolved``)
        self.resolved = False
        self._resolved_event: EventLike | None = None
        # the resolver is built now so a bad target fails at Channel(...), not on first call
        self.resolver = create_resolver(target, self._on_resolved)
        # service configs the resolver finds (if any) go straight to the channel
        self.resolver.config_listener = config_listener

    def set_health_check(self, health: HealthCheck) -> None:
        """Watch grpc.health.v1 on every subchannel created from now on."""
        self._health = health

    @property
    def authority(self) -> str:
        assert self.resolver is not None
        return self.resolver.authority

    def _start(self) -> None:
        self._choose_runtime()
        assert self.runtime is not None
        self._picker_changed = self.runtime.event()
        self._started = True
        self.balancer = self._balancer_factory(self)
        assert self.resolver is not None
        self.resolver.runtime = self.runtime
        self.resolver.start()

    def ensure_runtime(self) -> ChannelRuntime:
        """The channel's runtime; the first call starts the resolver and balancer with it."""
        if not self._started:
            if self.closed:  # never start a resolver (and its tasks) after close
                raise ChannelClosedError()
            self._start()
        assert self.runtime is not None
        return self.runtime

    def _choose_runtime(self) -> ChannelRuntime:
        """The runtime, chosen now from the running backend if no call chose it yet (this
        starts nothing: a state waiter needs events before the first call)."""
        if self.runtime is None:
            self.runtime = self._make_runtime()
        return self.runtime

    def _make_runtime(self) -> ChannelRuntime:
        if not on_asyncio():
            if self.task_group is None:
                raise RuntimeError(
                    "on trio (any backend but asyncio), open the channel with "
                    "`async with Channel(...)`: its background tasks run in that block"
                )
            return AnyioRuntime(self.task_group)
        return AsyncioRuntime()

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
        if not self.resolved:
            self.resolved = True
            event, self._resolved_event = self._resolved_event, None
            if event is not None:
                event.set()

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
        assert self.runtime is not None
        subchannel = Subchannel(
            endpoint,
            self._config,
            self._backoff,
            self._on_subchannel_state,
            runtime=self.runtime,
            health=self._health,
            on_deferred=self._on_deferred,
        )
        self.subchannels.add(subchannel)
        return subchannel

    def remove_subchannel(self, subchannel: SubchannelLike) -> None:
        assert isinstance(subchannel, Subchannel)
        self.subchannels.discard(subchannel)
        self._deferred.discard(subchannel)
        subchannel.shutdown(drain=True)
        # kept until closed, so that close() can cut what is still draining
        self._draining = {s for s in self._draining if not s.closed}
        if not subchannel.closed:
            self._draining.add(subchannel)

    def update_picker(self, state: ConnectivityState, picker: Picker) -> None:
        assert self.runtime is not None and self._picker_changed is not None
        if not self.closed:
            self._set_state(state)
        self.picker = picker
        self._picker_changed.set()
        self._picker_changed = self.runtime.event()

    # -- connectivity ----------------------------------------------------------------------
    def _set_state(self, state: ConnectivityState) -> None:
        if state is self.state:
            return
        self.state = state
        changed, self._state_changed = self._state_changed, None
        if changed is not None:
            changed.set()

    async def wait_for_state_change(self, last: ConnectivityState) -> None:
        """Return once ``state`` differs from ``last`` (at once if it already does). A
        closed channel's state (SHUTDOWN) never changes again: waiting for a change from
        SHUTDOWN raises ChannelClosedError."""
        while self.state is last:
            if self.closed:
                raise ChannelClosedError()
            if self._state_changed is None:
                self._state_changed = self._choose_runtime().event()
            await self._state_changed.wait()

    def try_to_connect(self) -> None:
        """Start connecting now, as a call would: the first time, start the resolver and
        balancer; then connect the subchannels that wait IDLE for a call. Nothing on a closed
        channel."""
        if self.closed:
            return
        self.ensure_runtime()
        if self._deferred:
            self._connect_deferred()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        assert self.runtime is not None
        return self.runtime.call_later(delay, lambda: self._serialize(callback))

    def now(self) -> float:
        assert self.runtime is not None
        return self.runtime.now()

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
        runtime = self.ensure_runtime()
        while True:
            changed = self._picker_changed  # set by any picker published from here on
            assert changed is not None
            if self.closed:
                raise ChannelClosedError()
            if self._deferred:
                self._connect_deferred()
            picker = self.picker
            if picker is not None:
                result = picker.pick(info)
                if result is not None:
                    subchannel = result.subchannel
                    conn = getattr(subchannel, "connection", None)
                    if conn is not None and conn.ready:
                        return conn, result
                    if result.on_done is not None:
                        result.on_done(0.0, False, False)  # raced with a state change: pick again
                    if conn is not None and isinstance(subchannel, Subchannel):
                        # dead but its loss not reported yet: drop it now, so that a new
                        # picker comes instead of this call waiting for news that may be late
                        subchannel.check_connection(conn)
                elif self.state is ConnectivityState.TRANSIENT_FAILURE and not wait_for_ready:
                    raise self._unavailable()
            if changed.is_set():
                continue  # a new picker came meanwhile: use it
            try:
                if deadline is None:
                    await changed.wait()
                else:
                    async with runtime.timeout(max(0.0, deadline - runtime.now())):
                        await changed.wait()
            except TimeoutError:
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED) from None

    async def wait_resolved(self, deadline: float | None) -> None:
        """Start the resolver if needed and wait for its first report (endpoints or an error),
        so that a call sees the service config the resolver publishes with it. Raises
        DEADLINE_EXCEEDED at ``deadline``, ChannelClosedError if the channel closes."""
        runtime = self.ensure_runtime()
        while not self.resolved:
            if self.closed:
                raise ChannelClosedError()
            if self._resolved_event is None:
                self._resolved_event = runtime.event()
            event = self._resolved_event
            try:
                if deadline is None:
                    await event.wait()
                else:
                    async with runtime.timeout(max(0.0, deadline - runtime.now())):
                        await event.wait()
            except TimeoutError:
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED) from None

    def _on_deferred(self, subchannel: Subchannel) -> None:
        self._deferred.add(subchannel)

    def _connect_deferred(self) -> None:
        """A call is here: connect the subchannels that wait IDLE for one."""
        deferred, self._deferred = self._deferred, set()
        for subchannel in deferred:
            if subchannel in self.subchannels:
                subchannel.connect_now()

    async def close(self) -> None:
        """Close every connection (calls still running fail) and wait until every task and
        connection of the channel is gone. Callable more than once, from several tasks: each
        waits for the same closing, and cancelling one caller cancels only its wait."""
        if self._closing is None:
            self.closed = True
            self._set_state(ConnectivityState.SHUTDOWN)  # wakes state waiters
            if not self._started:  # never used: only the resolver to close
                self._closing = _NOTHING_TO_WAIT_FOR
                assert self.resolver is not None
                await self.resolver.close()
                return
            assert self._picker_changed is not None and self.runtime is not None
            self._picker_changed.set()  # wake waiting calls: they see the channel closed
            if self._resolved_event is not None:
                self._resolved_event.set()
            if self.balancer is not None:
                self.balancer.close()
            subchannels = [*self.subchannels, *self._draining]
            self.subchannels.clear()
            self._draining.clear()
            self._deferred.clear()
            for subchannel in subchannels:
                subchannel.shutdown(drain=False)
            self._closing = self.runtime.spawn(
                lambda: self._finish(subchannels), "closing the channel"
            )
        await self._closing.wait()

    async def _finish(self, subchannels: list[Subchannel]) -> None:
        try:
            if self.resolver is not None:
                await self.resolver.close()
        finally:
            assert self.runtime is not None
            try:
                async with self.runtime.timeout(_CLOSE_GRACE):  # liveness bound: stuck sockets
                    for subchannel in subchannels:
                        await subchannel.wait_closed()
            except TimeoutError:
                log.warning("connections still closing after %ss: aborting them", _CLOSE_GRACE)
                for subchannel in subchannels:
                    subchannel.abort()
                for subchannel in subchannels:
                    await subchannel.wait_closed()
