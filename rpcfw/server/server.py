"""Server: serves generated service bases over HTTP/2, embeddable in any asyncio/anyio app.

Graceful stop (``stop(grace)``): stop accepting, send GOAWAY (max stream id) and a PING, then
after the PING ack a final GOAWAY naming the last stream we will serve; calls in flight run up
to ``grace`` seconds, then are cancelled with UNAVAILABLE; then connections close. A later
``stop(g)`` during the drain can only shorten it (``stop(0)``: end the calls now).

``run()`` is the standard way to run a server as a process: start, drain on SIGTERM/SIGINT
(a second signal cuts the grace short), stop with grace 0 if cancelled (see ``_signals``).

Health (``grpc.health.v1.Health``, on by default): ``stop()`` first sets every service
NOT_SERVING and gives Watch calls (up to 1 s, within ``grace``) to send it and end, so health
watchers learn it before the GOAWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import ssl
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .._method import ServerMethod, ServiceBase
from .._unix import BoundUnixSocket, is_unix_host, listening_address
from .._wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..compression import Compression, encoding_name
from ..health import HealthService, ServingStatus
from ..interceptors.base import ServerInterceptor
from ..reflection import reflection_services
from ..registry.base import Registrar, Registration
from ..tls import ServerTLS
from ..transport import AioConnection, H2Config, H2Connection
from ..transport.keepalive import ConnectionAge, KeepaliveConfig
from ._connection import ServerConnection, ServerStats
from ._dispatch import DispatchConfig
from ._drain import GraceBudget, drain
from ._listen import listen
from ._tls_accept import TlsHandshakes

if TYPE_CHECKING:
    from ._anyio import _AnyioServing

__all__ = ["DEFAULT_SERVER_KEEPALIVE", "Server", "ServerStats"]

#: gRPC's server default: ping a client quiet for 2 hours, close if no answer in 20 s
DEFAULT_SERVER_KEEPALIVE = KeepaliveConfig(
    time=2 * 60 * 60.0, timeout=20.0, permit_without_calls=True
)

log = logging.getLogger("rpcfw.server")


class Server:
    """Serves ``services`` (instances of generated ``<Service>Base`` subclasses).

    ``await server.run(host, port, grace=10)`` is the standard way to run it: serves until
    SIGTERM or SIGINT, then drains (see ``run``). To embed it in a program that handles its own
    shutdown: ``await server.start(host, port)`` binds (port 0 picks a free port: read
    ``server.port``); ``await server.serve_forever()`` runs until cancelled or stopped;
    ``await server.stop(grace)`` drains. ``async with server:`` stops it on exit.

    ``health=True`` (default) also serves ``grpc.health.v1.Health`` with a new
    ``rpcfw.HealthService`` unless ``services`` already has that service; ``server.health`` is
    the HealthService served (yours if you passed one, whatever ``health`` says), or None.
    ``start()`` marks ``""`` and every service in ``server.services`` SERVING (those whose status
    was set before keep it); ``server.services`` names the services given, not an added Health.

    ``reflection=True`` also serves gRPC server reflection (``grpc.reflection.v1`` and
    ``v1alpha``, see ``rpcfw.reflection``) describing every service served, so grpcurl and
    other tools can list, describe and call them without the .proto files. Off by default.

    Connections: ``max_concurrent_streams`` handlers run at once per connection (a stream over
    it is refused, the connection lives); ``handshake_timeout`` for the client's first
    SETTINGS; ``keepalive`` pings a quiet client (default 2 h, 20 s to answer; None: off);
    ``connection_age`` closes idle connections and drains old ones (grpc-go's MaxConnectionIdle,
    MaxConnectionAge, MaxConnectionAgeGrace); ``http2`` sets every other limit (``H2Config``:
    windows, header sizes, reset budget, PING policy). ``stats`` / ``transport_stats()`` count
    connections, calls, resets and refusals.

    ``compression`` (``"gzip"``, ``"deflate"``): compress responses to clients that accept it
    (``grpc-accept-encoding``); a handler can choose per call with
    ``context.set_compression()``. Compressed requests are read whatever this says.

    ``interceptors``: ``rpcfw.ServerInterceptor`` objects run around every call, in order
    (see ``rpcfw.interceptors``): auth, logging, metrics, deadline rules.
    """

    def __init__(
        self,
        services: Iterable[ServiceBase],
        *,
        health: bool = True,
        reflection: bool = False,
        max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        registry: Registrar | None = None,
        registration: Registration | None = None,
        max_concurrent_streams: int = 100,
        handshake_timeout: float = 20.0,
        keepalive: KeepaliveConfig | None = DEFAULT_SERVER_KEEPALIVE,
        connection_age: ConnectionAge | None = None,
        http2: H2Config | None = None,
        compression: Compression | str | None = None,
        interceptors: Sequence[ServerInterceptor] = (),
    ) -> None:

        self.registry = registry
        self._registration = registration or Registration()

        services = list(services)
        self.health: HealthService | None = next(
            (s for s in services if isinstance(s, HealthService)), None
        )
        methods: dict[str, ServerMethod[Any, Any]] = {}
        names: set[str] = set()
        for service in services:
            if not isinstance(service, ServiceBase):
                raise TypeError(f"{service!r} is not an rpcfw service (subclass a generated *Base)")
            names.add(service.__rpcfw_service__)
            for path, method in service.__rpcfw_methods__().items():
                if path in methods:
                    raise ValueError(f"method {path} is served twice")
                methods[path] = method
        self.services = tuple(sorted(names))
        if health and HealthService.__rpcfw_service__ not in names:
            self.health = HealthService()
            names.add(HealthService.__rpcfw_service__)
            methods.update(self.health.__rpcfw_methods__())
        if reflection:
            self._add_reflection(services, names, methods)
        self._dispatch = DispatchConfig(
            methods,
            frozenset(names),
            max_receive_message_length,
            max_send_message_length,
            encoding_name(compression),
            tuple(interceptors),
        )
        self._h2_config = http2 or H2Config(max_concurrent_streams=max_concurrent_streams)
        self._handshake_timeout = handshake_timeout
        self._keepalive = keepalive
        self._connection_age = connection_age or ConnectionAge()
        self.stats = ServerStats()
        self._connections_gone: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._listeners: list[asyncio.Server] = []  # add_listener's
        self._tls_handshakes = TlsHandshakes(self.stats)
        self._connections: set[ServerConnection] = set()
        self._anyio_connections: set[object] = set()  # served by serve()
        self._anyio_serving: _AnyioServing | None = None  # while serve() runs
        self._unix_sockets: list[BoundUnixSocket] = []  # socket files to remove on stop
        self._stopped: asyncio.Event | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._budget: GraceBudget | None = None  # the drain's time, which stop() may cut
        self.host: str | None = None
        self.port: int | None = None

    def _add_reflection(
        self,
        services: list[ServiceBase],
        names: set[str],
        methods: dict[str, ServerMethod[Any, Any]],
    ) -> None:
        """Serve both reflection services (those ``services`` lacks), describing them all."""

        served = list(services)
        if self.health is not None and self.health not in served:
            served.append(self.health)
        for service in reflection_services(served):
            if service.__rpcfw_service__ not in names:
                names.add(service.__rpcfw_service__)
                methods.update(service.__rpcfw_methods__())

    def __repr__(self) -> str:
        where = self.host if is_unix_host(self.host) else f"{self.host}:{self.port}"
        return f"<rpcfw.Server {where} services={list(self.services)}>"

    def _protocol_factory(self) -> AioConnection:
        conn = ServerConnection(self, self._connection_age)
        protocol = AioConnection(
            H2Connection(self._h2_config, client=False),
            conn,
            handshake_timeout=self._handshake_timeout,
            keepalive=self._keepalive,
        )
        conn.protocol = protocol
        self._connections.add(conn)
        self.stats.connections_accepted += 1
        return protocol

    def transport_stats(self) -> ServerStats:
        """``stats`` with the counters of connections still open added in."""
        total = dataclasses.replace(self.stats)
        for conn in self._connections:
            if conn.protocol is not None:
                total.resets_received += conn.protocol.core.resets_received
                total.streams_refused += conn.protocol.core.streams_refused
        return total

    def _connection_closed(self, conn: ServerConnection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._connections_gone is not None:
            self._connections_gone.set()

    @property
    def open_connections(self) -> int:
        """How many client connections are open now, on either IO layer."""
        return len(self._connections) + len(self._anyio_connections)

    @property
    def running_calls(self) -> int:
        """Handler tasks running now (on either IO layer)."""
        serving = self._anyio_serving
        anyio_calls = serving.calls if serving is not None else 0
        return sum(len(conn.calls) for conn in self._connections) + anyio_calls

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = 1024,
        tls: ServerTLS | ssl.SSLContext | None = None,
    ) -> None:
        """Listen on ``host:port`` (port 0: any free port, see ``port``), over TLS with
        ``tls`` (a ``ServerTLS``, or a ready server-side ``ssl.SSLContext``), and register.
        More listeners (plaintext and TLS side by side): ``add_listener``.

        ``host`` ``"unix:/path/to.sock"`` (``unix:relative``, ``unix:///abs``) or
        ``"unix-abstract:name"`` listens on a Unix domain socket instead (``port`` ignored;
        ``server.port`` is then 0 and ``server.address`` the ``unix:`` target for a Channel).
        A socket file no server listens on (left by a killed one) is replaced; a live socket,
        or a path that is not a socket, raises OSError (EADDRINUSE) and is left alone.
        ``stop()`` removes the socket file. ``registry=`` is skipped (with a warning) for a
        unix socket: other hosts cannot reach it."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._stopped = asyncio.Event()
        self._server = await self._listen(host, port, backlog, tls)
        self.host, self.port = listening_address(self._server.sockets[0].getsockname())
        self._mark_serving()
        log.info("serving %s on %s", ", ".join(self.services), self.address)
        if self.registry is not None and is_unix_host(self.host):
            log.warning("not registering %s: other hosts cannot reach a unix socket", self.address)
        elif self.registry is not None:
            assert self.host is not None and self.port is not None
            instances = self._registration.instances(self.services, self.host, self.port)
            await self.registry.register(instances)

    async def add_listener(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = 1024,
        tls: ServerTLS | ssl.SSLContext | None = None,
    ) -> int:
        """Serve on one more address (after ``start``), e.g. TLS beside plaintext; returns
        its port. Registration names the ``start`` address only."""
        if self._server is None:
            raise RuntimeError("start() the server first")
        listener = await self._listen(host, port, backlog, tls)
        self._listeners.append(listener)
        port = listening_address(listener.sockets[0].getsockname())[1]
        log.info("also serving on %s:%s%s", host, port, " (TLS)" if tls is not None else "")
        return port

    async def _listen(
        self, host: str, port: int, backlog: int, tls: ServerTLS | ssl.SSLContext | None
    ) -> asyncio.Server:
        listener, bound = await listen(
            host, port, backlog, tls, self._protocol_factory, self._tls_handshakes
        )
        if bound is not None:
            self._unix_sockets.append(bound)
        return listener

    def _mark_serving(self) -> None:
        if self.health is not None:
            for name in ("", *self.services):
                self.health._set_default(name, ServingStatus.SERVING)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on any anyio backend, asyncio or trio, until stopped or cancelled:
        ``port = await task_group.start(server.serve, host, port)``.

        ``await server.stop(grace)`` from another task drains it, as after ``start()``: the
        listener closes, health goes NOT_SERVING, GOAWAY, calls in flight get up to ``grace``
        seconds (None: no limit), the rest end with UNAVAILABLE; then ``serve()`` returns
        normally (the task group exits without cancellation) and ``stop()`` returns. The drain
        runs in the task that runs ``serve()``; a later ``stop(g)`` can only shorten it.

        Cancelling the task group stops the server at once (during a drain too): each
        connection gets a GOAWAY, handlers are cancelled (no grace), sockets close. Health
        (Check and Watch) works on every backend; registration (``registry=``) is asyncio-only
        (its registry clients are): ``serve()`` does not register or deregister.
        ``host`` may be a unix socket (``"unix:/path"``, ``"unix-abstract:name"``) as for
        ``start()``: it reports port 0 (``server.address`` is the target) and removes its
        socket file when it ends.
        """
        from ._anyio import serve_anyio

        await serve_anyio(self, host, port, task_status)

    @property
    def address(self) -> str:
        """Where it listens, as a channel target: ``host:port``, or for a unix socket
        ``unix:/abs/path`` / ``unix-abstract:name`` (``port`` is then 0)."""
        if self.port is None:
            raise RuntimeError("server not started")
        if is_unix_host(self.host):
            return str(self.host)
        return f"{self.host}:{self.port}"

    async def run(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        grace: float | None = 10.0,
        signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
        on_started: Callable[[Server], object] | None = None,
        tls: ServerTLS | ssl.SSLContext | None = None,
    ) -> None:
        """Serve until SIGTERM or SIGINT, then drain: the standard way to run a server
        (over TLS with ``tls``, as ``start`` takes it).

        ``await server.run("0.0.0.0", 50051, grace=10)`` (or ``asyncio.run(server.run(...))``):

        - starts the server (``start(host, port)``: binds, and registers if ``registry=`` was
          given; a server already started is a ``RuntimeError``), then calls
          ``on_started(server)`` if given (read ``server.port`` there when ``port`` is 0);
        - on the first of ``signals`` (asyncio's ``loop.add_signal_handler``, installed before
          the server starts) logs it at INFO and ``stop(grace)``: deregisters, sends GOAWAY,
          lets calls in flight finish for up to ``grace`` seconds (None: no limit), then ends
          the rest with UNAVAILABLE; ``run()`` returns once the server has stopped;
        - a second signal during that drain cuts the grace short: ``stop(0)``, calls still
          running end with UNAVAILABLE at once;
        - if the task running ``run()`` is cancelled, the server stops with grace 0 and the
          cancellation propagates (so does an error from ``start()`` or ``on_started``);
        - it also returns when the server is stopped another way (``stop()`` from elsewhere).

        The signal handlers are removed when ``run()`` returns or raises, and the Python-level
        handlers found before (``signal.getsignal``: the default ones, or ``asyncio.run``'s
        SIGINT handler) are put back. A handler the loop itself already had for one of these
        signals is replaced and not put back. Handlers can only be installed in the main thread
        on Unix (else ``RuntimeError``); ``signals=()`` installs none: ``run()`` then serves
        until cancelled or stopped.
        """
        from ._signals import run_until_signal

        await run_until_signal(
            self, host, port, grace=grace, signals=signals, on_started=on_started, tls=tls
        )

    async def serve_forever(self) -> None:
        """Run until ``stop()``; if cancelled (e.g. by an anyio task group), stop first."""
        if self._stopped is None:
            raise RuntimeError("call start() first")
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.stop(grace=0))
            raise

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self.stop(grace=None if exc is None else 0)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, send GOAWAY, let calls in flight finish for up to ``grace`` seconds
        (None: wait for all), then cancel what is left with UNAVAILABLE and close.

        Called again while a drain runs, it waits for that drain, which it can only shorten:
        the calls still running get at most ``grace`` more seconds from now (``stop(0)``: they
        end with UNAVAILABLE at once, as grpc-go's ``Stop()`` after ``GracefulStop()``).

        The same for a server run by ``serve()``, on any anyio backend (trio too): call it from
        another task; it returns once ``serve()`` has returned. Cancelling the caller of
        ``stop()`` does not stop the drain. A server not started (or already stopped): no-op."""
        if self._anyio_serving is not None:
            await self._anyio_serving.stop(grace)
            return
        if self._server is None:
            return
        if self._stopping is None:
            if self.health is not None:
                self.health.enter_graceful_shutdown()
            self._budget = GraceBudget()
            self._stopping = asyncio.ensure_future(self._drain(grace))
        elif grace is not None and not self._stopping.done():
            assert self._budget is not None
            self._budget.end_in(grace)
        await asyncio.shield(self._stopping)

    async def _drain(self, grace: float | None) -> None:
        assert self._budget is not None
        try:
            await drain(self, grace, self._budget)
        finally:
            self._budget.close()
