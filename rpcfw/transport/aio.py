"""The asyncio IO layer: an ``asyncio.Protocol`` that drives one ``H2Connection``.

It reads bytes into the core, hands events to streams and to its owner (the server's or the
channel's connection object), and writes what the core queued: after each read at once, and
for the application's writes once per event-loop iteration (``write_soon``), so headers, a
message and trailers written together go out in one ``send``. Works with uvloop (transports
are duck-typed).

Bounds: a server's new streams become handler calls only after the whole read was processed,
so a stream reset in the same read never costs a task; when the peer does not read (the socket
buffer is full) and keeps asking for control replies (PING, SETTINGS), reading stops until the
socket drains.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Protocol as TypingProtocol

from .._unix import peer_name
from .connection import H2Connection
from .driver import EventDispatch
from .events import Event
from .frames import ErrorCode
from .keepalive import KeepaliveConfig
from .stream import ConnectionLostError, Stream

__all__ = ["FRAMES_PER_SLICE", "MAX_QUEUED_CONTROL_REPLIES", "AioConnection", "ConnectionOwner"]

Headers = list[tuple[str, str]]

#: control replies (PING/SETTINGS acks) a peer that does not read may make us queue before we
#: stop reading from it (grpc-go's maxQueuedTransportResponseFrames)
MAX_QUEUED_CONTROL_REPLIES = 50
#: frames processed before other connections get the event loop (a read may hold 50,000)
FRAMES_PER_SLICE = 1000


class ConnectionOwner(TypingProtocol):
    """Callbacks from a connection to whoever owns it."""

    def on_connection_made(self, conn: AioConnection) -> None:
        """The socket is connected and our SETTINGS are queued."""

    def on_request(self, conn: AioConnection, stream: Stream) -> None:
        """Server: a new call arrived on ``stream`` (headers in ``stream.headers``)."""

    def on_goaway(self, conn: AioConnection, last_stream_id: int, code: int) -> None:
        """The peer sent GOAWAY."""

    def on_ping_ack(self, conn: AioConnection, data: bytes) -> None:
        """A PING we sent was acknowledged."""

    def on_idle(self, conn: AioConnection) -> None:
        """The last stream was released."""

    def on_closed(self, conn: AioConnection, reason: str) -> None:
        """The connection is gone."""


class _AioWaker:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        future = self._future = self._loop.create_future()
        try:
            await future
        finally:
            self._future = None


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _ReadBuffer(threading.local):
    """One receive buffer per thread (event loop): a transport fills it and hands it back
    synchronously (``get_buffer`` -> read -> ``buffer_updated``), and ``buffer_updated``
    copies the bytes out at once, so connections never see each other's bytes."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(READ_BUFFER_SIZE))


#: a read takes at most this much (asyncio's own default for ``data_received`` transports)
READ_BUFFER_SIZE = 256 * 1024
_read_buffer = _ReadBuffer()


class AioConnection(EventDispatch, asyncio.BufferedProtocol):
    """One HTTP/2 connection on an asyncio transport (client or server, as ``core`` is)."""

    def __init__(
        self,
        core: H2Connection,
        owner: ConnectionOwner,
        *,
        handshake_timeout: float | None = None,
        keepalive: KeepaliveConfig | None = None,
    ) -> None:
        self.core = core
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        #: the peer's address as host:port ("unknown" before the connection is made)
        self.peer = "unknown"
        #: the verified peer certificate's identity on a TLS connection (set by its acceptor)
        self.peer_identity: object | None = None
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.close_reason = ""
        self.handshake_done = False
        self._handshake_timeout = handshake_timeout
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._handshake_waiter: asyncio.Future[None] | None = None
        self._flush_scheduled = False
        self._write_paused = False
        self._reading_paused = False
        self._backlog_paused = False
        self.backlog_slices = 0  # slices of huge reads deferred to later loop iterations
        self._replies_at_pause = 0
        self._writable: list[asyncio.Future[None]] = []
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._keepalive = keepalive
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._ping_sent_at: float | None = None
        self.last_read = self.loop.time()
        self.keepalive_pings_sent = 0

    def __repr__(self) -> str:
        side = "client" if self.core.client else "server"
        return f"<AioConnection {side} {self.peer} streams={len(self.streams)}>"

    def _peer_name(self) -> str:
        return peer_name(
            None if self.transport is None else self.transport.get_extra_info("peername")
        )

    def is_open(self) -> bool:
        return not self.closed and self.transport is not None and not self.core.closed

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is duck-typed
        self.peer = self._peer_name()
        if self.closed:  # closed before its transport came (a server stopping right after the
            transport.close()  # accept): close the socket, or the peer waits for SETTINGS
            return
        _set_nodelay(transport)
        self.core.initiate()
        self._flush()
        self.owner.on_connection_made(self)
        if self.core.closed:
            return
        if self._handshake_timeout is not None:
            self._handshake_timer = self.loop.call_later(
                self._handshake_timeout, self._handshake_expired
            )
        if self._keepalive is not None:
            self.last_read = self.loop.time()
            self._keepalive_timer = self.loop.call_at(
                self.last_read + self._keepalive.time, self._keepalive_tick
            )

    def _keepalive_tick(self) -> None:
        assert self._keepalive is not None
        wake_at = self._keepalive_due(self._keepalive, self.loop.time())
        if wake_at is None:
            self._keepalive_timer = None
            return
        self._keepalive_timer = self.loop.call_at(wake_at, self._keepalive_tick)

    def _handshake_expired(self) -> None:
        if not self.handshake_done:
            self.close(ErrorCode.PROTOCOL_ERROR, "handshake timeout")

    def _handshake_completed(self) -> None:
        self.handshake_done = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        if self._handshake_waiter is not None and not self._handshake_waiter.done():
            self._handshake_waiter.set_result(None)

    async def wait_handshake(self) -> None:
        """Until the peer's first SETTINGS arrived (a live HTTP/2 peer, not just a socket)."""
        if self.handshake_done:
            return
        if self.closed:
            raise ConnectionLostError(self.close_reason)
        if self._handshake_waiter is None:
            self._handshake_waiter = self.loop.create_future()
        await asyncio.shield(self._handshake_waiter)

    def _keepalive_acked(self) -> None:
        """Our keepalive PING was answered: the next one is due a full period from now."""
        self._ping_sent_at = None
        if self._keepalive_timer is not None and self._keepalive is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = self.loop.call_at(
                self.last_read + self._keepalive.time, self._keepalive_tick
            )

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        self._process(self.core.receive(data, FRAMES_PER_SLICE))

    # asyncio.BufferedProtocol: the transport reads into a buffer we lend it. Without it, a
    # TLS transport decrypts every record with SSLObject.read(256 KiB): a 256 KiB allocation
    # per 16 KiB record (measured: 5x the decryption cost of a 100 KiB message)
    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_read_buffer.view[:nbytes]))

    def _continue_backlog(self) -> None:
        """The next slice of a huge read (other connections ran in between)."""
        self.backlog_slices += 1
        self._backlog_paused = False
        if not self.closed and not self.core.closed:
            self._process(self.core.receive(b"", FRAMES_PER_SLICE))
        if not self._backlog_paused and not self._reading_paused and not self.closed:
            assert self.transport is not None
            self.transport.resume_reading()

    def _process(self, events: list[Event]) -> None:
        new, terminated = self._dispatch(events)
        if new is not None:
            for stream in new:
                if stream.error is None:
                    self.owner.on_request(self, stream)
                else:  # reset within the same read: no handler, no task
                    stream.release()
        self._flush()
        if terminated is not None:
            self._terminate(f"{ErrorCode(terminated.error_code).name}: {terminated.debug}")
            return
        if self._slot_waiters and self.core.can_open_stream():
            self._wake_slot_waiters()
        if self.core.backlog and not self._backlog_paused:
            assert self.transport is not None
            if not self._reading_paused:
                self.transport.pause_reading()
            self._backlog_paused = True
            self.loop.call_soon(self._continue_backlog)
        if (
            self._write_paused
            and not self._reading_paused
            and self.core.control_replies - self._replies_at_pause > MAX_QUEUED_CONTROL_REPLIES
        ):
            self._reading_paused = True
            assert self.transport is not None
            if not self._backlog_paused:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def pause_writing(self) -> None:
        self._write_paused = True
        self._replies_at_pause = self.core.control_replies

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._writable = self._writable, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            if not self._backlog_paused:
                self.transport.resume_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._handshake_timer, self._keepalive_timer):
            if timer is not None:
                timer.cancel()
        if not self.close_reason:
            self.close_reason = str(exc) if exc else "connection closed by peer"
        self.closed = True
        error = ConnectionLostError(self.close_reason)
        for stream in list(self.streams.values()):
            stream.on_error(error)
        waiters = self._writable + self._slot_waiters
        if self._handshake_waiter is not None:
            waiters.append(self._handshake_waiter)
        self._writable, self._slot_waiters = [], []
        for future in waiters:
            if not future.done():
                future.set_exception(ConnectionLostError(self.close_reason))
                future.exception()  # retrieved: a waiter that went away logs nothing
        self.owner.on_closed(self, self.close_reason)

    # -- StreamIO ------------------------------------------------------------------------
    def write_soon(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.core.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def clock(self) -> float:
        """The event loop's time (deadlines are measured with it)."""
        return self.loop.time()

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def wait_writable(self) -> None:
        if self.closed:
            raise ConnectionLostError(self.close_reason)
        if self._write_paused:
            future = self.loop.create_future()
            self._writable.append(future)
            await future

    async def flush_and_yield(self) -> None:
        self._flush()
        await asyncio.sleep(0)
        await self.wait_writable()

    def new_waker(self) -> _AioWaker:
        return _AioWaker(self.loop)

    # -- client ----------------------------------------------------------------------------
    async def wait_for_stream_slot(self) -> None:
        """Until the peer's MAX_CONCURRENT_STREAMS allows one more stream (or it closes)."""
        while not self.core.can_open_stream():
            if self.closed or self.core.closed or self.core.goaway_received_last is not None:
                return
            future = self.loop.create_future()
            self._slot_waiters.append(future)
            await future

    def _wake_slots(self) -> None:
        if self._slot_waiters:
            self._wake_slot_waiters()

    def _wake_slot_waiters(self) -> None:
        waiters, self._slot_waiters = self._slot_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- connection control -----------------------------------------------------------------
    def close(self, code: int = ErrorCode.NO_ERROR, debug: str = "") -> None:
        """GOAWAY (with ``code``), then close the socket; streams still open see the loss."""
        if self.closed:
            return
        self.core.close(code, debug)
        self._terminate(debug or "closed")

    def abort(self) -> None:
        """Drop the socket now, unsent bytes and all."""
        if self.transport is not None:
            self.transport.abort()

    def _terminate(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        self._flush()
        if self.transport is not None:
            self.transport.close()
        else:
            self.closed = True
