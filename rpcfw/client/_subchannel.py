"""Subchannel: rpcfw's connection to one endpoint, with connectivity state tracked by rpcfw.

States: IDLE -> (request_connection) -> CONNECTING -> READY, or TRANSIENT_FAILURE and a retry
after a backoff delay (exponential with jitter). With health checking, a connected subchannel
is READY only while the server's grpc.health.v1 Watch says SERVING (TRANSIENT_FAILURE while it
says otherwise; a server without the health service counts as SERVING).

A connection that is lost or receives a GOAWAY takes the subchannel back to IDLE at once, and
it stays IDLE until a call needs it (gRPC's idle channel): the balancer's
``request_connection()`` is then only recorded (``connect_deferred``) and the channel's next
pick calls :meth:`Subchannel.connect_now`, which connects at once, without a backoff delay. So
a server that restarts while the channel is idle is reached by the next call, and an endpoint
that is really down still fails that call fast (TRANSIENT_FAILURE).

Removing a subchannel drains it: calls in flight finish, then it closes. ``shutdown`` cancels
every task the subchannel started and ``wait_closed`` waits for them and for every connection.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from .._proto.grpc.health.v1.health_rpcfw import HEALTH_WATCH, HealthCheckRequest
from .._runtime import ChannelRuntime, TaskHandle
from .._status import Status
from .._wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..balancer.base import ConnectivityState
from ..endpoint import Endpoint
from ..errors import RpcError
from ..policy.backoff import Backoff, BackoffConfig
from ._call import ClientCall
from ._connection import ClientConnection, ConnectionOptions

__all__ = ["HealthCheck", "Subchannel"]

log = logging.getLogger("rpcfw.client")

StateListener = Callable[["Subchannel", ConnectivityState], None]

_IDLE = ConnectivityState.IDLE
_SHUTDOWN = ConnectivityState.SHUTDOWN


class HealthCheck:
    """Which service to watch, and the request headers (with :path and :authority) to do it."""

    def __init__(self, service: str, headers: list[tuple[str, str]]) -> None:
        self.service = service
        self.headers = headers


class Subchannel:
    def __init__(
        self,
        endpoint: Endpoint,
        config: ConnectionOptions,
        backoff: BackoffConfig,
        on_state: StateListener,
        *,
        runtime: ChannelRuntime,
        connect_timeout: float = 20.0,
        health: HealthCheck | None = None,
        on_deferred: Callable[[Subchannel], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._config = config
        self._backoff = Backoff(backoff)
        self._on_state = on_state
        self._on_deferred = on_deferred
        self._connect_timeout = connect_timeout
        self.state = ConnectivityState.IDLE
        self.connection: ClientConnection | None = None
        self.last_error: str | None = None
        #: IDLE after losing a connection, asked to connect: waits for a call to need it
        self.connect_deferred = False
        self._lost = False  # lost a connection since the last connect: reconnect on demand
        self._runtime = runtime
        self._task: TaskHandle | None = None  # the connect loop
        self._connects = 0  # which connect loop is the current one
        self._health_tasks: dict[ClientConnection, TaskHandle] = {}
        # every connection not closed for good yet: connecting, current, draining
        self._conns: set[ClientConnection] = set()
        self._ended: list[ClientConnection] = []  # closed: their IO tasks may still be ending
        self._closed = runtime.event()
        self._health = health

    def __repr__(self) -> str:
        return f"<Subchannel {self.endpoint} {self.state.value}>"

    def _set(self, state: ConnectivityState) -> None:
        if state is not self.state and self.state is not _SHUTDOWN:
            self.state = state
            self._on_state(self, state)

    def request_connection(self) -> None:
        """Connect if IDLE. After a lost connection the request is only recorded: the
        connection starts when a call needs it (:meth:`connect_now`)."""
        if self.state is not _IDLE or self._task is not None:
            return
        if self._lost:
            if not self.connect_deferred:
                self.connect_deferred = True
                if self._on_deferred is not None:
                    self._on_deferred(self)
            return
        self._start_connecting()

    def connect_now(self) -> None:
        """A call needs this subchannel: start the connection it deferred, at once."""
        if self.connect_deferred and self.state is _IDLE and self._task is None:
            self._start_connecting()

    def _start_connecting(self) -> None:
        self._lost = False
        self.connect_deferred = False
        self._connects += 1
        number = self._connects
        self._task = self._runtime.spawn(
            lambda: self._connect_loop(number), f"connecting to {self.endpoint}"
        )
        self._set(ConnectivityState.CONNECTING)

    @property
    def closed(self) -> bool:
        """Shut down, and every connection is closed."""
        return self._closed.is_set()

    def is_shut_down(self) -> bool:
        return self.state is _SHUTDOWN

    def _forget(self, conn: ClientConnection) -> None:
        """Stop tracking ``conn`` once its socket is gone (or never existed)."""
        if conn.closed and (conn.protocol is None or conn.protocol.closed):
            if conn in self._conns:
                self._conns.discard(conn)
                if conn.anyio:  # kept until its IO task ended, for wait_closed
                    self._ended = [c for c in self._ended if not c.io_ended()]
                    self._ended.append(conn)
            if self.state is _SHUTDOWN and not self._conns:
                self._closed.set()

    async def _connect_loop(self, number: int) -> None:
        try:
            await self._connect()
        finally:  # cleared by the task itself: a loss right after READY may reconnect at once
            if self._connects == number:
                self._task = None

    async def _connect(self) -> None:
        while not self.is_shut_down():
            conn = ClientConnection(
                self.endpoint.host,
                self.endpoint.port,
                self._config,
                self._connection_changed,
                self._runtime,
                self.endpoint.attributes,
            )
            self._conns.add(conn)
            try:
                async with self._runtime.timeout(self._connect_timeout):
                    await conn.connect()
                if not conn.ready:  # lost (or GOAWAY) before we could use it
                    raise ConnectionError("connection closed during the handshake")
            except Exception as exc:
                conn.close()
                self._forget(conn)
                if not isinstance(exc, OSError | TimeoutError):
                    log.error("connecting to %s failed", self.endpoint, exc_info=exc)
                self.last_error = (
                    f"{self.endpoint}: {getattr(exc, 'strerror', None) or exc or 'timeout'}"
                )
                self._set(ConnectivityState.TRANSIENT_FAILURE)
                await self._runtime.sleep(self._backoff.next_delay())
                continue
            except BaseException:  # cancelled (shutdown): no half-made connection left behind
                conn.close()
                self._forget(conn)
                raise
            if self.is_shut_down():
                conn.close()
                self._forget(conn)
                return
            self._backoff.reset()
            self.last_error = None
            self.connection = conn
            if self._health is None:
                self._set(ConnectivityState.READY)
            else:
                self._health_tasks[conn] = self._runtime.spawn(
                    functools.partial(self._watch_health, conn, self._health),
                    f"health watch of {self.endpoint}",
                )
            return

    async def _watch_health(self, conn: ClientConnection, health: HealthCheck) -> None:
        """Follow the server's health for this connection; retry the watch with backoff while
        the connection lives. Cancelled when the connection stops being the current one."""
        backoff = Backoff(self._backoff.config)
        try:
            await self._follow_health(conn, health, backoff)
        finally:
            self._health_tasks.pop(conn, None)

    async def _follow_health(
        self, conn: ClientConnection, health: HealthCheck, backoff: Backoff
    ) -> None:
        while conn is self.connection and conn.ready:
            call = ClientCall(
                conn, HEALTH_WATCH, health.headers, None, DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, None
            )
            with call:
                try:
                    await call.start(HealthCheckRequest(service=health.service), end=True)
                    while (reply := await call.recv()) is not None:
                        if conn is not self.connection:
                            return
                        serving = reply.status == 1  # SERVING
                        self.last_error = None if serving else f"{self.endpoint}: not serving"
                        self._set(
                            ConnectivityState.READY
                            if serving
                            else ConnectivityState.TRANSIENT_FAILURE
                        )
                        backoff.reset()
                    await call.finish()
                except RpcError as exc:
                    if exc.status is Status.UNIMPLEMENTED:  # no health service: serving
                        if conn is self.connection:
                            self._set(ConnectivityState.READY)
                        return
                    log.debug("health watch of %s ended: %s", self.endpoint, exc)
            if conn is self.connection and conn.ready:
                await self._runtime.sleep(backoff.next_delay())

    def _connection_changed(self, conn: ClientConnection) -> None:
        """The connection was lost or the server sent GOAWAY: new calls need a new one."""
        self._forget(conn)
        if conn is self.connection:
            self._lost_current(conn)

    def check_connection(self, conn: ClientConnection) -> None:
        """The call path found ``conn`` unusable while it is still the current connection
        (closed before its loss was reported): drop it now, as if the loss had been reported,
        so the balancer moves on instead of every call waiting for news that may be late."""
        if conn is self.connection and not conn.ready:
            if not conn.draining:
                conn.close()
            self._forget(conn)
            self._lost_current(conn)

    def _lost_current(self, conn: ClientConnection) -> None:
        self.connection = None
        task = self._health_tasks.get(conn)
        if task is not None:  # its watch must not keep a draining connection open
            task.cancel()
        if conn.closed and self.last_error is None:
            self.last_error = f"{self.endpoint}: connection lost"
        self._lost = True  # reconnect when a call needs it, not before
        self._set(_IDLE)

    def shutdown(self, *, drain: bool = True) -> None:
        """Stop for good. With ``drain``, calls in flight finish before the connection closes;
        without, every connection closes now (also one a first shutdown left draining)."""
        self.state = _SHUTDOWN
        self.connect_deferred = False
        if self._task is not None:
            self._task.cancel()
        for task in self._health_tasks.values():
            task.cancel()
        for conn in list(self._conns):
            if drain:
                conn.drain()
            else:
                conn.close()
            self._forget(conn)
        self.connection = None
        if not self._conns:
            self._closed.set()

    def abort(self) -> None:
        """Last resort of a close that takes too long: drop every socket without a goodbye."""
        for conn in [*self._conns, *self._ended]:
            conn.abort()

    async def wait_closed(self) -> None:
        """Until shut down, with every task the subchannel started ended and every connection
        closed. Cancelling the caller cancels only this wait."""
        await self._closed.wait()
        tasks = [t for t in (self._task, *self._health_tasks.values()) if t is not None]
        # a handle's wait leaves the task's outcome to it (failures are logged), while a
        # cancellation of this caller propagates
        for task in tasks:
            await task.wait()
        while self._ended:  # anyio: each connection's IO task, after its socket closed
            await self._ended[0].wait_ended()
            self._ended.pop(0)
