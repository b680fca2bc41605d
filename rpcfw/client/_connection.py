"""ClientConnection: one HTTP/2 connection from a channel to one address, on the channel's
runtime: an ``AioConnection`` protocol on asyncio, an ``AnyioConnection`` (its ``run()`` a task
of the channel) on other anyio backends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from .._runtime import AsyncioRuntime, ChannelRuntime, TaskHandle
from ..transport import AioConnection, ConnectionLostError, H2Config, H2Connection, Stream
from ..transport.anyio_io import AnyioConnection
from ..transport.keepalive import KeepaliveConfig

__all__ = ["ClientConnection", "ConnectionOptions"]

log = logging.getLogger("rpcfw.client")

Headers = list[tuple[str, str]]
IOConnection = AioConnection | AnyioConnection


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """How a channel's connections are made: HTTP/2 limits and client keepalive."""

    http2: H2Config = field(default_factory=H2Config)
    keepalive: KeepaliveConfig | None = None


class ClientConnection:
    """Tracks its own state: connected, draining (peer sent GOAWAY), closed. Owns the
    IO connection and receives its callbacks."""

    def __init__(
        self,
        host: str,
        port: int,
        config: ConnectionOptions,
        on_change: Callable[[ClientConnection], None] | None,
        runtime: ChannelRuntime,
    ) -> None:
        self.host = host
        self.port = port
        self._config = config
        self._on_change = on_change
        self.runtime = runtime
        #: calls on it use anyio's call guard (its IO is an ``AnyioConnection``)
        self.anyio = runtime.anyio
        self.protocol: IOConnection | None = None
        self._run: TaskHandle | None = None  # AnyioConnection.run(), on anyio
        self.draining = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "draining" if self.draining else "open"
        return f"<ClientConnection {self.host}:{self.port} {state}>"

    async def connect(self) -> None:
        runtime = self.runtime
        protocol: IOConnection
        if isinstance(runtime, AsyncioRuntime):
            _, protocol = await runtime.loop.create_connection(
                lambda: AioConnection(
                    H2Connection(self._config.http2, client=True),
                    self,
                    keepalive=self._config.keepalive,
                ),
                self.host,
                self.port,
            )
        else:
            byte_stream = await anyio.connect_tcp(self.host, self.port)
            protocol = AnyioConnection(
                H2Connection(self._config.http2, client=True),
                self,
                byte_stream,
                keepalive=self._config.keepalive,
            )
            self._run = runtime.spawn(protocol.run, f"connection to {self.host}:{self.port}")
        self.protocol = protocol
        if self.closed:  # closed while connecting
            protocol.close()
            return
        # READY only once the server's SETTINGS arrived, as gRPC: a socket alone is no server (a
        # dying process's kernel may still accept connections)
        try:
            await protocol.wait_handshake()
        except ConnectionLostError as exc:
            raise OSError(f"connection lost during the HTTP/2 handshake: {exc}") from None

    @property
    def ready(self) -> bool:
        """Usable for new calls."""
        return (
            not self.draining
            and not self.closed
            and self.protocol is not None
            and self.protocol.is_open()
        )

    def try_open_stream(self, headers: Headers, end_stream: bool) -> Stream | None:
        """A new stream now, or None when the caller must wait (``open_stream``)."""
        protocol = self.protocol
        if protocol is None or not protocol.core.can_open_stream():
            return None
        return protocol.open_stream(headers, end_stream)

    async def open_stream(self, headers: Headers, end_stream: bool) -> Stream:
        """A new stream; waits while the server's MAX_CONCURRENT_STREAMS is reached."""
        stream = self.try_open_stream(headers, end_stream)
        if stream is not None:
            return stream
        if self.protocol is None:
            raise RuntimeError("not connected")
        await self.protocol.wait_for_stream_slot()
        return self.protocol.open_stream(headers, end_stream)

    def close(self) -> None:
        self.closed = True
        if self.protocol is not None:
            self.protocol.close()

    def abort(self) -> None:
        """Drop the socket now, without a goodbye."""
        if isinstance(self.protocol, AioConnection):
            self.protocol.abort()
        elif self._run is not None:
            self._run.cancel()

    def io_ended(self) -> bool:
        return self._run is None or self._run.done()

    async def wait_ended(self) -> None:
        """Until the IO task of an ``AnyioConnection`` has ended (nothing to wait for on
        asyncio: the loop closes the socket)."""
        if self._run is not None:
            await self._run.wait()

    def drain(self) -> None:
        """No new calls; close once the calls in flight have finished."""
        self.draining = True
        if self.protocol is None or not self.protocol.streams:
            self.close()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    # ConnectionOwner (both IO layers)
    def on_connection_made(self, conn: IOConnection) -> None:
        pass

    def on_request(self, conn: IOConnection, stream: Stream) -> None:
        stream.reset()  # servers cannot start streams on a client connection
        stream.release()

    def on_goaway(self, conn: IOConnection, last_stream_id: int, code: int) -> None:
        if not self.draining:
            log.debug("%s:%s sent GOAWAY (last stream %d)", self.host, self.port, last_stream_id)
            self.draining = True
            self._changed()
        if not conn.streams:
            self.close()

    def on_ping_ack(self, conn: IOConnection, data: bytes) -> None:
        pass

    def on_idle(self, conn: IOConnection) -> None:
        if self.draining:
            self.close()

    def on_closed(self, conn: IOConnection, reason: str) -> None:
        self.closed = True
        self._changed()

    def on_shutdown(self, conn: IOConnection) -> None:
        pass  # the channel's task group was cancelled: its calls see the connection lost
