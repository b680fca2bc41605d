"""Subchannel: rpcfw's connection to one endpoint, with connectivity state tracked by rpcfw.

States: IDLE -> (request_connection) -> CONNECTING -> READY, or TRANSIENT_FAILURE and a retry
after a backoff delay (exponential with jitter). With health checking, a connected subchannel
is READY only while the server's grpc.health.v1 Watch says SERVING (TRANSIENT_FAILURE while it
says otherwise; a server without the health service counts as SERVING). A READY connection
that is lost or receives a GOAWAY takes the subchannel back to IDLE at once; the balancer asks
it to reconnect. Removing a subchannel drains it: calls in flight finish, then it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .._status import Status
from .._wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..balancer.base import ConnectivityState, Endpoint
from ..errors import RpcError
from ..policy.backoff import Backoff, BackoffConfig
from ..transport import H2Config
from ._call import ClientCall
from ._connection import ClientConnection

__all__ = ["HealthCheck", "Subchannel"]

log = logging.getLogger("rpcfw.client")

StateListener = Callable[["Subchannel", ConnectivityState], None]


class HealthCheck:
    """Which service to watch, and the request headers (with :path and :authority) to do it."""

    def __init__(self, service: str, headers: list[tuple[str, str]]) -> None:
        self.service = service
        self.headers = headers


class Subchannel:
    def __init__(
        self,
        endpoint: Endpoint,
        config: H2Config,
        backoff: BackoffConfig,
        on_state: StateListener,
        *,
        connect_timeout: float = 20.0,
        health: HealthCheck | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._config = config
        self._backoff = Backoff(backoff)
        self._on_state = on_state
        self._connect_timeout = connect_timeout
        self.state = ConnectivityState.IDLE
        self.connection: ClientConnection | None = None
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._old: set[ClientConnection] = set()
        self._health = health
        self._health_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Subchannel {self.endpoint} {self.state.value}>"

    def _set(self, state: ConnectivityState) -> None:
        if state is not self.state and self.state is not ConnectivityState.SHUTDOWN:
            self.state = state
            self._on_state(self, state)

    def request_connection(self) -> None:
        if self.state is ConnectivityState.IDLE and self._task is None:
            self._set(ConnectivityState.CONNECTING)
            self._task = asyncio.get_running_loop().create_task(self._connect_loop())

    def is_shut_down(self) -> bool:
        return self.state is ConnectivityState.SHUTDOWN

    async def _connect_loop(self) -> None:
        try:
            while not self.is_shut_down():
                conn = ClientConnection(
                    self.endpoint.host, self.endpoint.port, self._config, self._connection_changed
                )
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        await conn.connect()
                except (OSError, TimeoutError) as exc:
                    conn.close()
                    self.last_error = (
                        f"{self.endpoint}: {getattr(exc, 'strerror', None) or exc or 'timeout'}"
                    )
                    self._set(ConnectivityState.TRANSIENT_FAILURE)
                    await asyncio.sleep(self._backoff.next_delay())
                    continue
                if self.is_shut_down():  # shut down while connecting
                    conn.close()
                    return
                self._backoff.reset()
                self.last_error = None
                self.connection = conn
                if self._health is None:
                    self._set(ConnectivityState.READY)
                else:
                    self._health_task = asyncio.get_running_loop().create_task(
                        self._watch_health(conn, self._health)
                    )
                return
        finally:
            self._task = None

    async def _watch_health(self, conn: ClientConnection, health: HealthCheck) -> None:
        """Follow the server's health for this connection; retry the watch with backoff while
        the connection lives."""
        from .._proto.grpc.health.v1.health_rpcfw import HEALTH_WATCH, HealthCheckRequest

        backoff = Backoff(self._backoff.config)
        while conn is self.connection and conn.ready:
            call = ClientCall(
                conn, HEALTH_WATCH, health.headers, None, DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, None
            )
            with call:
                try:
                    await call.start(HealthCheckRequest(service=health.service), end=True)
                    while (reply := await call.recv()) is not None:
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
                        self._set(ConnectivityState.READY)
                        return
                    log.debug("health watch of %s ended: %s", self.endpoint, exc)
            if conn is self.connection and conn.ready:
                await asyncio.sleep(backoff.next_delay())

    def _connection_changed(self, conn: ClientConnection) -> None:
        """The connection was lost or the server sent GOAWAY: new calls need a new one."""
        if conn is not self.connection:
            if conn.closed:
                self._old.discard(conn)
            return
        self.connection = None
        if not conn.closed:
            self._old.add(conn)  # draining: it closes itself once its calls finish
        if conn.closed and self.last_error is None:
            self.last_error = f"{self.endpoint}: connection lost"
        self._set(ConnectivityState.IDLE)

    def shutdown(self, *, drain: bool = True) -> None:
        """Stop for good. With ``drain``, calls in flight finish before the connection closes."""
        self.state = ConnectivityState.SHUTDOWN
        for task in (self._task, self._health_task):
            if task is not None:
                task.cancel()
        for conn in (self.connection, *self._old):
            if conn is None:
                continue
            if drain:
                conn.drain()
            else:
                conn.close()
        self.connection = None
        self._old.clear()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
