"""ServerConnection: the server's side of one accepted connection.

It starts one handler task per call and owns those tasks (the server awaits or cancels them on
stop), drains the connection in two GOAWAY steps (first "no new streams, please" with a PING to
measure a round trip, then the real last stream id), and applies connection management:
close after ``max_idle`` without calls, drain after ``max_age``, close ``grace`` later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._guard import CallGuard
from .._status import Status
from ..errors import RpcError
from ..transport import AioConnection, ErrorCode, H2Connection, Stream
from ..transport.frames import MAX_STREAM_ID
from ..transport.keepalive import ConnectionAge, jittered_age
from ._dispatch import handle_request

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ServerConnection", "ServerStats"]

log = logging.getLogger("rpcfw.server")

_DRAIN_PING = b"rpcfwdrn"
_PING_ACK_WAIT = 1.0  # how long a drain waits for its PING's ack before going on


@dataclass
class ServerStats:
    """Counters of one server since it started (read them in tests, expose them as metrics)."""

    connections_accepted: int = 0
    #: handler tasks started (one per call that reached a handler, never per reset stream)
    calls_started: int = 0
    #: summed over connections closed so far; ``Server.transport_stats()`` adds the open ones
    resets_received: int = 0
    streams_refused: int = 0
    connections_ended_for_abuse: int = 0
    #: TLS listeners: handshakes that failed or did not choose ALPN h2 (each logged)
    tls_handshakes_failed: int = 0

    def connection_ended(self, core: H2Connection, peer: str, reason: str) -> None:
        """Add an ended connection's counters (and log it if it ended for abuse)."""
        self.resets_received += core.resets_received
        self.streams_refused += core.streams_refused
        if reason.startswith("ENHANCE_YOUR_CALM"):
            self.connections_ended_for_abuse += 1
            log.warning("closed connection from %s: %s", peer, reason)


class ServerConnection:
    """Owner of one accepted connection (the ``ConnectionOwner`` of its ``AioConnection``)."""

    def __init__(self, server: Server, age: ConnectionAge) -> None:
        self.server = server
        self.protocol: AioConnection | None = None
        self.calls: dict[asyncio.Task[None], CallGuard] = {}
        self.draining = False
        self.ping_acked = asyncio.Event()
        self._age = age
        self._age_draining = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []

    # -- draining --------------------------------------------------------------------------
    def announce_drain(self) -> None:
        """Step 1: GOAWAY with the highest stream id (no new streams, please) and a PING."""
        protocol = self.protocol
        if protocol is not None and protocol.is_open():
            protocol.goaway(MAX_STREAM_ID)
            protocol.ping(_DRAIN_PING)

    def refuse_new_streams(self) -> None:
        """Step 2: GOAWAY naming the last stream served; close once its calls are done."""
        protocol = self.protocol
        if self.draining or protocol is None:
            return
        self.draining = True
        if protocol.is_open():
            protocol.goaway(protocol.core.highest_inbound_stream_id)
            if not self.calls:
                protocol.close()

    def cancel_calls(self, message: str) -> None:
        """End every running call with UNAVAILABLE (their handlers are woken)."""
        for guard in list(self.calls.values()):
            guard.cancel(RpcError(Status.UNAVAILABLE, message))

    # -- connection management -------------------------------------------------------------
    def _later(self, delay: float, callback: object) -> asyncio.TimerHandle:
        assert self.protocol is not None
        timer = self.protocol.loop.call_later(delay, callback)  # type: ignore[arg-type]
        self._timers.append(timer)
        return timer

    def _idle_expired(self) -> None:
        self._idle_timer = None
        protocol = self.protocol
        if protocol is not None and not protocol.streams and not self.calls:
            log.debug("closing idle connection from %s", protocol.peer)
            protocol.close(ErrorCode.NO_ERROR, "max_idle")

    def _age_expired(self) -> None:
        if self.draining or self._age_draining:
            return
        self._age_draining = True
        self.announce_drain()
        self._later(_PING_ACK_WAIT, self.refuse_new_streams)  # if the PING is never acked
        if self._age.grace is not None:
            self._later(self._age.grace, self._grace_expired)

    def _grace_expired(self) -> None:
        self.cancel_calls("connection reached its maximum age")
        if self.protocol is not None:  # handlers that ignore the wake-up are cut off
            self._later(_PING_ACK_WAIT, self.protocol.close)

    # -- ConnectionOwner -----------------------------------------------------------------
    def on_connection_made(self, conn: AioConnection) -> None:
        if self.server._stopping is not None:  # accepted while stopping: GOAWAY, close
            conn.goaway(0)
            conn.close()
            return
        if self._age.max_idle is not None:
            self._idle_timer = self._later(self._age.max_idle, self._idle_expired)
        if self._age.max_age is not None:
            self._later(jittered_age(self._age.max_age), self._age_expired)

    def on_request(self, conn: AioConnection, stream: Stream) -> None:
        self.server.stats.calls_started += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        guard = CallGuard()
        stream.watcher = guard.cancel  # reset or connection lost: wake the handler
        task = conn.loop.create_task(handle_request(self.server._dispatch, conn, stream, guard))
        self.calls[task] = guard
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.calls.pop(task, None)
        if self.draining and not self.calls and self.protocol is not None:
            self.protocol.close()

    def on_goaway(self, conn: AioConnection, last_stream_id: int, code: int) -> None:
        pass

    def on_idle(self, conn: AioConnection) -> None:
        if self._age.max_idle is not None and self._idle_timer is None and not self.draining:
            self._idle_timer = self._later(self._age.max_idle, self._idle_expired)

    def on_ping_ack(self, conn: AioConnection, data: bytes) -> None:
        self.ping_acked.set()
        if self._age_draining:
            self.refuse_new_streams()

    def on_closed(self, conn: AioConnection, reason: str) -> None:
        self.ping_acked.set()  # nothing left to wait for
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.server.stats.connection_ended(conn.core, conn.peer, reason)
        self.server._connection_closed(self)
