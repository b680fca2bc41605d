"""A server's graceful stop: deregister, stop accepting, tell health watchers, GOAWAY in two
steps, let calls finish within the grace, end the rest with UNAVAILABLE, close.

``GraceBudget`` is the drain's time, which a later ``stop(g)`` can only shorten
(``stop(0)``: end the calls now, as grpc-go's ``Stop()`` after ``GracefulStop()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .._unix import remove_socket_file

if TYPE_CHECKING:
    from .server import Server

__all__ = ["GraceBudget", "drain"]

log = logging.getLogger("rpcfw.server")

_CLOSE_LINGER = 1.0  # how long a stopped server lets closing sockets flush before aborting


class GraceBudget:
    def __init__(self) -> None:
        self._over = asyncio.Event()  # set: the drain waits for no more calls
        self._timers: list[asyncio.TimerHandle] = []

    def end_in(self, seconds: float) -> None:
        """The grace ends at most ``seconds`` from now."""
        if seconds <= 0:
            self._over.set()
        else:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(seconds, self._over.set))

    async def wait(
        self, futures: Collection[asyncio.Future[Any]], limit: float | None
    ) -> set[asyncio.Future[Any]]:
        """Wait until ``futures`` are done, ``limit`` seconds passed or the grace is over;
        return those not done."""
        if not futures:
            return set()
        over = asyncio.ensure_future(self._over.wait())
        all_done = asyncio.ensure_future(asyncio.wait(futures))
        try:
            await asyncio.wait({over, all_done}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            over.cancel()
            all_done.cancel()  # cancels the wait only, never the futures
            await asyncio.wait({over, all_done})  # both ended: nothing left behind
        return {f for f in futures if not f.done()}

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


async def drain(server: Server, grace: float | None, budget: GraceBudget) -> None:
    assert server._server is not None and server._stopped is not None
    if server.registry is not None:  # clients stop sending here before we stop serving
        try:
            await server.registry.deregister()
        except Exception:
            log.exception("deregistration failed")
    await _stop_accepting([server._server, *server._listeners])
    for bound in server._unix_sockets:  # new connections find no socket file
        remove_socket_file(bound)
    server._tls_handshakes.cancel()
    log.info(
        "draining %s: new connections refused, %d calls in flight",
        server.address, server.running_calls,
    )  # fmt: skip
    short = 1.0 if grace is None else min(1.0, grace)
    if server.health is not None and short > 0:  # Watch calls send NOT_SERVING and end
        watchers = asyncio.ensure_future(server.health._watchers_ended())
        if await budget.wait([watchers], short):
            watchers.cancel()
    conns = [c for c in server._connections if c.protocol is not None and c.protocol.is_open()]
    for conn in conns:  # phase 1: no new streams, please (and measure a round trip)
        conn.announce_drain()
    if conns:
        acks = [asyncio.ensure_future(c.ping_acked.wait()) for c in conns]
        for ack in await budget.wait(acks, short):
            ack.cancel()
    for conn in conns:  # phase 2: the last stream we serve
        conn.refuse_new_streams()
    tasks = [t for c in conns for t in c.calls]
    if tasks:
        if grace is not None:
            budget.end_in(grace)
        pending = await budget.wait(tasks, None)
        if pending:
            log.info("cancelling %d calls still running after the grace period", len(pending))
            for conn in conns:
                conn.cancel_calls("server is shutting down")
            _, pending = await asyncio.wait(pending, timeout=1.0)
            for task in pending:  # handlers that ignored the wake-up
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
    await _close_connections(server)
    server._stopped.set()
    log.info("stopped %s", server.address)


async def _stop_accepting(listeners: list[asyncio.Server]) -> None:
    """Close the listeners without losing a connection accepted just before.

    asyncio (3.11) makes a connection's transport in a task that runs a loop step after the
    accept; if ``Server.close()`` came in between, that transport fails (``Server._attach``
    asserts the server is open), silently, after our protocol was made, and the accepted socket
    stays open, unread and unwritten: the client waits for the server's SETTINGS until its
    connect timeout, its calls waiting in pick() meanwhile. So: stop reading the listening
    sockets first (no more accepts), let the tasks of connections already accepted make their
    transports (their steps are queued before ours), then close. Those connections are then
    told GOAWAY and closed (``ServerConnection.on_connection_made``)."""
    loop = asyncio.get_running_loop()
    for listener in listeners:
        for sock in listener.sockets:
            with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):  # no readers
                loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)
    for listener in listeners:
        listener.close()


async def _close_connections(server: Server) -> None:
    assert server._server is not None
    for conn in list(server._connections):
        if conn.protocol is not None:
            conn.protocol.close()
    await asyncio.sleep(0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server._server.wait_closed(), 1.0)
    for conn in list(server._connections):  # accepted while we were closing
        if conn.protocol is not None:
            conn.protocol.close()
    if server._connections:  # sockets still flushing their last bytes to a slow peer
        server._connections_gone = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_LINGER):
                await server._connections_gone.wait()
        for conn in list(server._connections):
            if conn.protocol is not None:
                conn.protocol.abort()
        await asyncio.sleep(0)  # their connection_lost callbacks run now
