"""The anyio IO layer: drives one ``H2Connection`` over an anyio byte stream.

Runs on every anyio backend (asyncio and trio). ``await conn.run()`` serves the connection
until it ends; it owns its reader, writer, handshake and keepalive tasks in one task group, so
cancelling the task that runs it closes the connection and leaves nothing behind. Streams are
the same ``Stream`` objects the asyncio layer hands out; only the wake-ups are anyio events.

Bounds as in the asyncio layer: new streams become requests only after the whole read was
processed, and while a send is blocked (the peer does not read) and control replies pile up,
reading waits for that send to finish.
"""

from __future__ import annotations

import contextlib
from typing import Protocol as TypingProtocol

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from .._unix import peer_name
from .aio import FRAMES_PER_SLICE, MAX_QUEUED_CONTROL_REPLIES
from .connection import H2Connection
from .driver import EventDispatch
from .events import Event
from .frames import ErrorCode
from .keepalive import KeepaliveConfig
from .stream import ConnectionLostError, Stream

__all__ = ["AnyioConnection", "AnyioConnectionOwner"]

Headers = list[tuple[str, str]]
_RECEIVE_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class AnyioConnectionOwner(TypingProtocol):
    """Callbacks from an ``AnyioConnection`` (see ``ConnectionOwner`` of the asyncio layer)."""

    def on_connection_made(self, conn: AnyioConnection) -> None: ...

    def on_request(self, conn: AnyioConnection, stream: Stream) -> None: ...

    def on_goaway(self, conn: AnyioConnection, last_stream_id: int, code: int) -> None: ...

    def on_ping_ack(self, conn: AnyioConnection, data: bytes) -> None: ...

    def on_idle(self, conn: AnyioConnection) -> None: ...

    def on_closed(self, conn: AnyioConnection, reason: str) -> None: ...

    def on_shutdown(self, conn: AnyioConnection) -> None:
        """The task running the connection was cancelled: last words on open streams now
        (a GOAWAY follows, then the socket closes)."""


class _AnyioWaker:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        event = self._event = anyio.Event()
        try:
            await event.wait()
        finally:
            self._event = None


class AnyioConnection(EventDispatch):
    """One HTTP/2 connection on an anyio byte stream (client or server, as ``core`` is)."""

    def __init__(
        self,
        core: H2Connection,
        owner: AnyioConnectionOwner,
        byte_stream: anyio.abc.ByteStream,
        *,
        handshake_timeout: float | None = None,
        keepalive: KeepaliveConfig | None = None,
    ) -> None:
        self.core = core
        self.owner = owner  # type: ignore[assignment]  # same callbacks, this layer's type
        self._owner = owner
        self._byte_stream = byte_stream
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.close_reason = ""
        self.handshake_done = False
        self.keepalive_pings_sent = 0
        self.last_read = 0.0
        self.peer = peer_name(byte_stream.extra(SocketAttribute.remote_address, None))
        #: the verified peer certificate's identity on a TLS connection
        self.peer_identity: object | None = None
        self._handshake_timeout = handshake_timeout
        self._keepalive = keepalive
        self._ping_sent_at: float | None = None
        self._write_wanted = anyio.Event()
        self._sending = False
        self._send_done = _AnyioWaker()
        self._slot_waiter = _AnyioWaker()
        self._handshake = anyio.Event()
        self._keepalive_wake = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        core.initiate()  # now: streams opened before run() starts must follow the preface

    def __repr__(self) -> str:
        side = "client" if self.core.client else "server"
        return f"<AnyioConnection {side} {self.peer} streams={len(self.streams)}>"

    def is_open(self) -> bool:
        return not self.closed and not self.core.closed

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the connection until it ends (or until the calling task is cancelled)."""
        reason = "connection closed by peer"
        try:
            self.owner.on_connection_made(self)  # type: ignore[arg-type]
            self.last_read = anyio.current_time()
            async with anyio.create_task_group() as group:
                self._task_group = group
                group.start_soon(self._write_loop)
                if self._handshake_timeout is not None:
                    group.start_soon(self._handshake_watch, self._handshake_timeout)
                if self._keepalive is not None:
                    group.start_soon(self._keepalive_loop, self._keepalive)
                self.write_soon()
                reason = await self._read_loop()
                await self._flush_final()
                group.cancel_scope.cancel()
        finally:
            if not self.core.closed:  # cancelled: tell the peer before the socket goes
                self._owner.on_shutdown(self)
                self.core.close(ErrorCode.NO_ERROR, "shutting down")
                await self._flush_final()
            self._lost(self.close_reason or reason)
            with anyio.CancelScope(shield=True):
                await self._byte_stream.aclose()

    async def _read_loop(self) -> str:
        receive = self._byte_stream.receive
        while not self.core.closed:
            try:
                data = await receive()
            except _RECEIVE_ERRORS as exc:
                return str(exc) or "connection closed by peer"
            self.last_read = anyio.current_time()
            events = self.core.receive(data, FRAMES_PER_SLICE)
            while True:
                if self._process(events):
                    return self.close_reason
                if not self.core.backlog:
                    break
                await anyio.lowlevel.checkpoint()  # a huge read: let others run in between
                events = self.core.receive(b"", FRAMES_PER_SLICE)
            if self.core.can_open_stream():
                self._slot_waiter.wake()
            replies = self.core.control_replies
            while (
                self._sending and self.core.control_replies - replies > MAX_QUEUED_CONTROL_REPLIES
            ):
                await self._send_done.wait()  # the peer does not read: neither do we
        return self.close_reason or "closed"

    def _process(self, events: list[Event]) -> bool:
        """Apply one slice of events; True when the connection ended for an error."""
        new, terminated = self._dispatch(events)
        if new is not None:
            for stream in new:
                if stream.error is None:
                    self.owner.on_request(self, stream)  # type: ignore[arg-type]
                else:  # reset within the same read: no handler
                    stream.release()
        self.write_soon()
        if terminated is not None:
            self.close_reason = f"{ErrorCode(terminated.error_code).name}: {terminated.debug}"
            return True
        return False

    async def _write_loop(self) -> None:
        send = self._byte_stream.send
        while True:
            await self._write_wanted.wait()
            self._write_wanted = anyio.Event()
            data = self.core.data_to_send()
            if not data:
                continue
            self._sending = True
            try:
                await send(data)
            except _RECEIVE_ERRORS:
                if self._task_group is not None:
                    self._task_group.cancel_scope.cancel()
                return
            finally:
                self._sending = False
                self._send_done.wake()
            if self.core.closed and self._task_group is not None:
                self._task_group.cancel_scope.cancel()  # the GOAWAY went out: done
                return

    async def _flush_final(self) -> None:
        """Write what the core still holds (a GOAWAY after a connection error)."""
        data = self.core.data_to_send()
        if data:
            with anyio.move_on_after(1.0, shield=True), contextlib.suppress(*_RECEIVE_ERRORS):
                await self._byte_stream.send(data)

    async def _handshake_watch(self, within: float) -> None:
        with anyio.move_on_after(within):
            await self._handshake.wait()
        if not self.handshake_done:
            self.close(ErrorCode.PROTOCOL_ERROR, "handshake timeout")

    async def _keepalive_loop(self, config: KeepaliveConfig) -> None:
        while True:
            now = anyio.current_time()
            wake_at = self._keepalive_due(config, now)
            if wake_at is None:
                return
            with anyio.move_on_after(max(0.0, wake_at - now)):
                await self._keepalive_wake.wait()
            self._keepalive_wake = anyio.Event()

    def _handshake_completed(self) -> None:
        self.handshake_done = True
        self._handshake.set()

    async def wait_handshake(self) -> None:
        """Until the peer's first SETTINGS arrived (a live HTTP/2 peer, not just a socket)."""
        if not self.handshake_done:
            if not self.closed:
                await self._handshake.wait()  # also set when the connection is lost
            if not self.handshake_done:
                raise ConnectionLostError(self.close_reason)

    def _keepalive_acked(self) -> None:
        self._ping_sent_at = None
        self._keepalive_wake.set()

    def _wake_slots(self) -> None:
        self._slot_waiter.wake()

    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = self.close_reason or reason
        error = ConnectionLostError(self.close_reason)
        for stream in list(self.streams.values()):
            stream.on_error(error)
        self._send_done.wake()
        self._slot_waiter.wake()
        self._handshake.set()
        self.owner.on_closed(self, self.close_reason)  # type: ignore[arg-type]

    # -- StreamIO --------------------------------------------------------------------------
    def write_soon(self) -> None:
        self._write_wanted.set()

    def clock(self) -> float:
        """anyio's clock (the running backend's; deadlines are measured with it)."""
        return anyio.current_time()

    @property
    def write_paused(self) -> bool:
        return self._sending

    async def wait_writable(self) -> None:
        if self.closed:
            raise ConnectionLostError(self.close_reason)
        while self._sending and not self.closed:
            await self._send_done.wait()

    async def flush_and_yield(self) -> None:
        self.write_soon()
        await anyio.lowlevel.checkpoint()
        await self.wait_writable()

    def new_waker(self) -> _AnyioWaker:
        return _AnyioWaker()

    # -- client ----------------------------------------------------------------------------
    async def wait_for_stream_slot(self) -> None:
        while not self.core.can_open_stream():
            if self.closed or self.core.closed or self.core.goaway_received_last is not None:
                return
            await self._slot_waiter.wait()

    # -- connection control ----------------------------------------------------------------
    def close(self, code: int = ErrorCode.NO_ERROR, debug: str = "") -> None:
        """GOAWAY (with ``code``), then the connection ends once it is written."""
        if self.closed or self.core.closed:
            return
        self.close_reason = debug or "closed"
        self.core.close(code, debug)
        self.write_soon()
