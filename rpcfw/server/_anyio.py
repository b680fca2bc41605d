"""Serving on any anyio backend (asyncio or trio): ``Server.serve()``.

One task group for the connections of the listener, one per connection (its handler tasks live
in it), and the transport's anyio layer underneath. Two ways to stop:

- ``server.stop(grace)`` from another task (``_AnyioServing.stop``): the graceful drain of
  ``_drain.drain`` on anyio, run by the task that runs ``serve()`` (it owns everything the drain
  touches): stop accepting (the listener closes first), health NOT_SERVING, GOAWAY in two steps,
  calls in flight get up to ``grace`` seconds, the rest end with UNAVAILABLE, connections close,
  and ``serve()`` returns normally.
- Cancelling the task group that runs ``serve()`` stops the server at once: every connection
  gets a GOAWAY, handlers are cancelled (no grace: their clients see UNAVAILABLE), sockets
  close. That holds during a drain too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .._guard import AnyioCallGuard
from .._status import Status
from .._unix import BoundUnixSocket, bind_unix, listening_address, parse_unix, remove_socket_file
from .._wire import trailers_for
from ..errors import RpcError
from ..transport import H2Connection, Stream
from ..transport.anyio_io import AnyioConnection
from ..transport.frames import MAX_STREAM_ID
from ._connection import _DRAIN_PING as DRAIN_PING
from ._context import RESPONSE_HEADERS
from ._dispatch import handle_request

if TYPE_CHECKING:
    from .server import Server

__all__ = ["serve_anyio"]

log = logging.getLogger("rpcfw.server")

_UNIX_BACKLOG = 1024
_CANCEL_WAIT = 1.0  # how long cancelled calls get to send UNAVAILABLE before their tasks go
_CLOSE_LINGER = 1.0  # how long closing connections get to flush before they are cut


class _AnyioGraceBudget:
    """The drain's time (``GraceBudget`` on anyio): waits run in cancel scopes whose deadline
    ``end_in`` can only bring closer (a later ``stop(g)`` shortens the drain)."""

    def __init__(self) -> None:
        self._deadline = math.inf
        self._scopes: set[anyio.CancelScope] = set()

    def end_in(self, seconds: float) -> None:
        """The grace ends at most ``seconds`` from now."""
        self._deadline = min(self._deadline, anyio.current_time() + max(0.0, seconds))
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, self._deadline)

    @contextmanager
    def limit(self, seconds: float | None) -> Iterator[anyio.CancelScope]:
        """A scope that ends (silently) when the grace is over or ``seconds`` have passed."""
        deadline = self._deadline
        if seconds is not None:
            deadline = min(deadline, anyio.current_time() + seconds)
        with anyio.CancelScope(deadline=deadline) as scope:
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)


class _AnyioServing:
    """One run of ``serve()``: its connections, its calls, and its graceful stop."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.owners: set[_AnyioServerConnection] = set()  # connections open now
        self.accepting = anyio.CancelScope()  # cancelled: the listener stops accepting
        self.stopping = False
        self.grace: float | None = None
        self.budget = _AnyioGraceBudget()
        self.stopped = anyio.Event()  # set when serve() ends, however it ends
        self.calls = 0  # handler tasks running, over every connection
        self._changed: anyio.Event | None = None  # set when calls or owners shrink

    # -- stop() -----------------------------------------------------------------------------
    async def stop(self, grace: float | None) -> None:
        """``Server.stop(grace)`` for a server run by ``serve()``: start the drain (or shorten
        the one running), and wait until ``serve()`` has ended."""
        if not self.stopping:
            self.stopping = True
            self.grace = grace
            if self.server.health is not None:
                self.server.health.enter_graceful_shutdown()
            self.accepting.cancel()  # serve()'s task runs the drain from here
        elif grace is not None:
            self.budget.end_in(grace)
        await self.stopped.wait()  # the caller's cancellation propagates; the drain goes on

    # -- bookkeeping ------------------------------------------------------------------------
    def changed(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Until ``done()`` is true (re-checked whenever a call or connection ends)."""
        while not done():
            self._changed = anyio.Event()
            try:
                await self._changed.wait()
            finally:
                self._changed = None

    # -- the drain ----------------------------------------------------------------------------
    async def drain(self) -> None:
        """The graceful stop, in the task that runs ``serve()``, after the listener closed."""
        server, budget, grace = self.server, self.budget, self.grace
        log.info(
            "draining %s: new connections refused, %d calls in flight", server.address, self.calls
        )
        short = 1.0 if grace is None else min(1.0, grace)
        if server.health is not None and short > 0:  # Watch calls send NOT_SERVING and end
            with budget.limit(short):
                await server.health._watchers_ended()
        owners = [o for o in self.owners if o.conn is not None and o.conn.is_open()]
        for owner in owners:  # phase 1: no new streams, please (and measure a round trip)
            owner.announce_drain()
        if owners:
            with budget.limit(short):
                for owner in owners:
                    await owner.ping_acked.wait()
        for owner in owners:  # phase 2: the last stream we serve
            owner.refuse_new_streams()
        if self.calls:
            if grace is not None:
                budget.end_in(grace)
            with budget.limit(None):
                await self.wait_until(lambda: not self.calls)
            if self.calls:
                log.info("cancelling %d calls still running after the grace period", self.calls)
                error = RpcError(Status.UNAVAILABLE, "server is shutting down")
                for owner in list(self.owners):
                    owner.cancel_calls(error)
                with anyio.move_on_after(_CANCEL_WAIT):
                    await self.wait_until(lambda: not self.calls)
                for owner in list(self.owners):  # handlers that ignored the wake-up
                    if owner.calls:
                        owner.handlers.cancel_scope.cancel()
        for owner in list(self.owners):
            owner.close()
        with anyio.move_on_after(_CLOSE_LINGER):  # sockets flushing their last bytes
            await self.wait_until(lambda: not self.owners)
        log.info("stopped %s", server.address)


class _AnyioServerConnection:
    """Owner of one accepted connection on the anyio layer: one handler task per call."""

    def __init__(self, serving: _AnyioServing, handlers: anyio.abc.TaskGroup) -> None:
        self.serving = serving
        self.server = serving.server
        self.handlers = handlers
        self.conn: AnyioConnection | None = None
        self.calls: set[AnyioCallGuard] = set()
        self.draining = False
        self.ping_acked = anyio.Event()

    # -- draining --------------------------------------------------------------------------
    def announce_drain(self) -> None:
        """Step 1: GOAWAY with the highest stream id (no new streams, please) and a PING."""
        conn = self.conn
        if conn is not None and conn.is_open():
            conn.goaway(MAX_STREAM_ID)
            conn.ping(DRAIN_PING)

    def refuse_new_streams(self) -> None:
        """Step 2: GOAWAY naming the last stream served; close once its calls are done."""
        conn = self.conn
        if self.draining or conn is None:
            return
        self.draining = True
        if conn.is_open():
            conn.goaway(conn.core.highest_inbound_stream_id)
            if not self.calls:
                conn.close()

    def cancel_calls(self, error: BaseException) -> None:
        """End every running call with ``error`` (their handlers are woken)."""
        for guard in list(self.calls):
            guard.cancel(error)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def _call(self, conn: AnyioConnection, stream: Stream, guard: AnyioCallGuard) -> None:
        self.calls.add(guard)
        self.serving.calls += 1
        try:
            await handle_request(self.server._dispatch, conn, stream, guard)
        finally:
            self.calls.discard(guard)
            self.serving.calls -= 1
            self.serving.changed()
            if self.draining and not self.calls:
                conn.close()

    # -- AnyioConnectionOwner ------------------------------------------------------------
    def on_connection_made(self, conn: AnyioConnection) -> None:
        self.conn = conn
        self.server.stats.connections_accepted += 1
        self.server._anyio_connections.add(conn)
        self.serving.owners.add(self)
        if self.serving.stopping:  # accepted just before the listener closed: GOAWAY, close
            conn.goaway(0)
            conn.close()

    def on_request(self, conn: AnyioConnection, stream: Stream) -> None:
        self.server.stats.calls_started += 1
        guard = AnyioCallGuard()
        stream.watcher = guard.cancel  # reset or connection lost: wake the handler
        self.handlers.start_soon(self._call, conn, stream, guard)

    def on_goaway(self, conn: AnyioConnection, last_stream_id: int, code: int) -> None:
        pass

    def on_ping_ack(self, conn: AnyioConnection, data: bytes) -> None:
        if data == DRAIN_PING:
            self.ping_acked.set()

    def on_idle(self, conn: AnyioConnection) -> None:
        pass

    def on_shutdown(self, conn: AnyioConnection) -> None:
        """Serving was cancelled: calls in flight end with UNAVAILABLE (what gRPC clients
        expect from a server going away), not with a bare reset."""
        for stream in list(conn.streams.values()):
            if stream.error is None and not stream.local_closed:
                trailers = trailers_for(Status.UNAVAILABLE, "server is shutting down")
                if not conn.core.response_started(stream.id):
                    trailers = [*RESPONSE_HEADERS, *trailers]
                conn.core.send_headers(stream.id, trailers, end_stream=True)

    def on_closed(self, conn: AnyioConnection, reason: str) -> None:
        self.ping_acked.set()  # nothing left to wait for
        self.server._anyio_connections.discard(conn)
        self.serving.owners.discard(self)
        self.serving.changed()
        self.server.stats.connection_ended(conn.core, conn.peer, reason)


async def _serve_connection(serving: _AnyioServing, byte_stream: anyio.abc.ByteStream) -> None:
    server = serving.server
    async with anyio.create_task_group() as handlers:
        conn = AnyioConnection(
            H2Connection(server._h2_config, client=False),
            _AnyioServerConnection(serving, handlers),
            byte_stream,
            handshake_timeout=server._handshake_timeout,
            keepalive=server._keepalive,
        )
        try:
            await conn.run()
        finally:
            handlers.cancel_scope.cancel()  # the connection is gone: so are its calls


async def serve_anyio(
    server: Server,
    host: str,
    port: int,
    task_status: anyio.abc.TaskStatus[int],
) -> None:
    if server._anyio_serving is not None:
        raise RuntimeError("server already serving")
    unix = parse_unix(host)
    bound: BoundUnixSocket | None = None
    listener: anyio.abc.Listener[anyio.abc.SocketStream]
    if unix is None:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    else:  # a unix socket: port ignored, a stale socket file replaced (see Server.start)
        bound = bind_unix(unix, _UNIX_BACKLOG)
        try:
            listener = await anyio.abc.SocketListener.from_socket(bound.sock)
        except BaseException:
            bound.sock.close()
            remove_socket_file(bound)
            raise
    serving = _AnyioServing(server)

    async def handle(byte_stream: anyio.abc.ByteStream) -> None:
        await _serve_connection(serving, byte_stream)

    try:
        async with anyio.create_task_group() as connections:
            async with listener:
                sockname = listener.extra(anyio.abc.SocketAttribute.local_address)
                server.host, server.port = listening_address(sockname)
                server._mark_serving()
                log.info("serving %s on %s (anyio)", ", ".join(server.services), server.address)
                server._anyio_serving = serving
                task_status.started(server.port)
                with serving.accepting:  # until stop(): connections run in ``connections``
                    if not serving.stopping:  # (stop() may have come before this line)
                        await listener.serve(handle, task_group=connections)
            # stop() was called: the listener is closed (no more connections), now drain
            if bound is not None:
                remove_socket_file(bound)  # new connections find no socket file
            await serving.drain()
            if serving.owners:  # still flushing after the linger: cut them off
                connections.cancel_scope.cancel()
    finally:
        server._anyio_serving = None
        serving.stopped.set()
        if bound is not None:
            remove_socket_file(bound)
