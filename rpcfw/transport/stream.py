"""Stream: one HTTP/2 stream as the call layer sees it, independent of the IO library.

Receiving is cancel-safe by construction: body bytes stay in the stream's buffer until the
reader ``take()``s them, so a reader cancelled while waiting (``fill()``) loses nothing and
the next read starts where the last one left off. ``fill(n)`` also opens the flow-control window
far enough for ``n`` bytes to arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .frames import ErrorCode

if TYPE_CHECKING:
    from .connection import H2Connection

__all__ = [
    "ConnectionLostError",
    "Stream",
    "StreamIO",
    "StreamResetError",
    "Waker",
]

Headers = list[tuple[str, str]]

#: frames a stream may queue before a sender that never waits is made to flush and yield
OUTPUT_BATCH = 128


class StreamResetError(Exception):
    """The stream was reset: by the peer (``remote``), by a GOAWAY that refused it, or by the
    local core for a protocol error on it."""

    def __init__(self, code: int, remote: bool, message: str = "") -> None:
        super().__init__(code, remote, message)
        self.code = code
        self.remote = remote
        self.message = message

    def __str__(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = str(self.code)
        who = "peer" if self.remote else "local"
        return f"stream reset ({who}, {name}){': ' + self.message if self.message else ''}"


class ConnectionLostError(Exception):
    """The connection ended before the stream did."""


class Waker(Protocol):
    """Parks one task until woken (an asyncio future or an anyio event underneath)."""

    def wake(self) -> None: ...

    async def wait(self) -> None: ...


class StreamIO(Protocol):
    """What a stream needs from the IO layer that owns its connection."""

    core: H2Connection

    def write_soon(self) -> None: ...

    @property
    def write_paused(self) -> bool: ...

    async def wait_writable(self) -> None: ...

    async def flush_and_yield(self) -> None: ...

    def new_waker(self) -> Waker: ...

    def stream_released(self, stream: Stream) -> None: ...


class Stream:
    """The receive buffer, headers, trailers and end state of one stream, plus send calls."""

    __slots__ = (
        "_buf",
        "_io",
        "_reader",
        "_writer",
        "end_received",
        "error",
        "headers",
        "id",
        "released",
        "trailers",
        "watcher",
    )

    def __init__(self, io: StreamIO, stream_id: int) -> None:
        self._io = io
        self.id = stream_id
        self._buf = bytearray()
        self.headers: Headers | None = None
        self.trailers: Headers | None = None
        self.end_received = False
        #: why the stream ended abnormally (reset, connection lost), once it has
        self.error: Exception | None = None
        self.released = False
        #: called with the error when the stream ends abnormally (a server wakes its handler)
        self.watcher: Callable[[Exception], None] | None = None
        self._reader: Waker | None = None  # made when a task first has to wait
        self._writer: Waker | None = None

    def __repr__(self) -> str:
        return f"<Stream {self.id} buffered={len(self._buf)} end={self.end_received}>"

    # -- called by the IO layer on events --------------------------------------------------
    def on_headers(self, headers: Headers, end_stream: bool) -> None:
        self.headers = headers
        self.end_received = end_stream
        if self._reader is not None:
            self._reader.wake()

    def on_data(self, data: bytes, end_stream: bool) -> None:
        self._buf += data
        if end_stream:
            self.end_received = True
        if self._reader is not None:
            self._reader.wake()

    def on_trailers(self, headers: Headers) -> None:
        self.trailers = headers
        self.end_received = True
        if self._reader is not None:
            self._reader.wake()

    def on_error(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
            if self.watcher is not None:
                self.watcher(error)
        if self._reader is not None:
            self._reader.wake()
        if self._writer is not None:
            self._writer.wake()

    def on_send_ready(self) -> None:
        if self._writer is not None:
            self._writer.wake()

    def _read_wait(self) -> Waker:
        if self._reader is None:
            self._reader = self._io.new_waker()
        return self._reader

    # -- receiving -----------------------------------------------------------------------
    @property
    def local_closed(self) -> bool:
        """This side has ended (END_STREAM queued or sent, or reset)."""
        return self._io.core.local_ended(self.id)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def peek(self, size: int) -> bytes:
        return bytes(self._buf[:size])

    def take(self, size: int, skip: int = 0) -> bytes:
        """Remove ``size`` buffered bytes, credit them to the flow-control window, and return
        them less the first ``skip`` (a message's prefix)."""
        data = bytes(self._buf[skip:size])
        del self._buf[:size]
        io = self._io
        io.core.consumed(self.id, size)
        if io.core.has_data_to_send:
            io.write_soon()
        return data

    async def fill(self, size: int) -> bool:
        """Wait until ``size`` bytes are buffered (True) or the peer ended the stream with
        fewer (False). Raises the stream's error if it ended abnormally first. Cancel-safe."""
        while len(self._buf) < size:
            if self.end_received:
                return False
            if self.error is not None:
                raise self.error
            io = self._io
            io.core.expect(self.id, size - len(self._buf))
            if io.core.has_data_to_send:
                io.write_soon()
            await self._read_wait().wait()
        return True

    async def wait_headers(self) -> Headers:
        """The response headers (client side)."""
        while self.headers is None:
            if self.error is not None:
                raise self.error
            await self._read_wait().wait()
        return self.headers

    async def wait_end(self) -> None:
        """Until the peer ended its side (trailers or END_STREAM), or raise the stream's error."""
        while not self.end_received:
            if self.error is not None:
                raise self.error
            await self._read_wait().wait()

    # -- sending -------------------------------------------------------------------------
    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def send_headers(self, headers: Headers, end_stream: bool = False) -> None:
        self._check()
        self._io.core.send_headers(self.id, headers, end_stream)
        self._io.write_soon()

    def send_header_block(self, block: bytes, end_stream: bool = False) -> None:
        """``send_headers`` with a block from ``HeaderEncoder`` (see H2Connection)."""
        self._check()
        self._io.core.send_header_block(self.id, block, end_stream)
        self._io.write_soon()

    def send_data_nowait(self, data: bytes, end_stream: bool = False) -> None:
        """Queue body bytes; ``drain()`` waits until flow control has let them out."""
        self._check()
        self._io.core.send_data(self.id, data, end_stream)
        self._io.write_soon()

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """Send body bytes; waits only when flow control or the socket holds them back."""
        self.send_data_nowait(data, end_stream)
        if self.needs_drain:
            await self.drain()
        elif self._io.core.queued_frames >= OUTPUT_BATCH:
            # a sender that never waits (a generator yielding as fast as it can): write what
            # is queued now, so socket backpressure can apply, and let others run
            await self._io.flush_and_yield()

    @property
    def needs_drain(self) -> bool:
        """Output of this stream is queued, or the socket is not taking more: ``drain()``
        would wait."""
        return bool(self._io.core.pending_bytes(self.id)) or self._io.write_paused

    async def drain(self) -> None:
        """Until this stream's queued output is sent and the socket takes more."""
        io = self._io
        while io.core.pending_bytes(self.id):
            self._check()
            if self._writer is None:
                self._writer = io.new_waker()
            await self._writer.wait()
        self._check()
        await io.wait_writable()

    def reset(self, code: int = ErrorCode.CANCEL) -> None:
        io = self._io
        io.core.reset_stream(self.id, code)
        if io.core.has_data_to_send:
            io.write_soon()

    def release(self) -> None:
        """The application is done with the stream (reset with CANCEL if it is still open)."""
        if not self.released:
            self.released = True
            io = self._io
            io.core.release_stream(self.id)
            if io.core.has_data_to_send:
                io.write_soon()
            io.stream_released(self)
