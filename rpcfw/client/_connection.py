"""ClientConnection: one HTTP/2 connection from a channel to one address, on the channel's
runtime: an ``AioConnection`` protocol on asyncio, an ``AnyioConnection`` (its ``run()`` a task
of the channel) on other anyio backends."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from .._runtime import AsyncioRuntime, ChannelRuntime, TaskHandle
from .._unix import socket_address
from ..tls import ALPN_H2, ChannelTLS
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
    tls: ChannelTLS | None = None


def _check_alpn(chosen: str | None) -> None:
    if chosen != ALPN_H2:
        raise ConnectionError(
            f"the server did not negotiate ALPN h2 over TLS (it chose {chosen!r})"
        )


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
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        #: the socket address (a path, or "\0name") when ``host`` names a unix socket
        self.unix_path = socket_address(host)
        tls = config.tls
        #: the name the server's certificate is checked against (and sent as SNI)
        self.server_name = None if tls is None else tls.name_for(host, attributes)
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
        return f"<ClientConnection {self.label} {state}>"

    @property
    def label(self) -> str:
        """``host:port``, or the unix socket (``unix:/path``)."""
        return self.host if self.unix_path is not None else f"{self.host}:{self.port}"

    async def connect(self) -> None:
        runtime = self.runtime
        protocol: IOConnection
        tls = self._config.tls
        if isinstance(runtime, AsyncioRuntime):
            protocol = await self._connect_asyncio(runtime)
        else:
            byte_stream = await self._connect_anyio()
            protocol = AnyioConnection(
                H2Connection(self._config.http2, client=True),
                self,
                byte_stream,
                keepalive=self._config.keepalive,
            )
            self._run = runtime.spawn(protocol.run, f"connection to {self.label}")
        self.protocol = protocol
        if self.closed:  # closed while connecting
            protocol.close()
            return
        # READY only once the server's SETTINGS arrived, as gRPC: a socket alone is no server (a
        # dying process's kernel may still accept connections)
        try:
            await protocol.wait_handshake()
        except ConnectionLostError as exc:
            hint = (
                "does the server want a client certificate this one lacks?"
                if tls is not None
                else f"is it a TLS {'port' if self.unix_path is None else 'socket'} (pass tls=)?"
            )
            raise OSError(f"connection lost during the HTTP/2 handshake: {exc} ({hint})") from None

    def _aio_protocol(self) -> AioConnection:
        return AioConnection(
            H2Connection(self._config.http2, client=True), self, keepalive=self._config.keepalive
        )

    async def _connect_asyncio(self, runtime: AsyncioRuntime) -> AioConnection:
        """TCP or a unix socket, over TLS when the channel has it (the loop's handshake, bounded
        by the ``ChannelTLS`` handshake timeout; the server must choose ALPN h2)."""
        tls = self._config.tls
        ssl_context = None if tls is None else tls.context
        handshake_timeout = None if tls is None else tls.handshake_timeout
        transport: asyncio.BaseTransport
        if self.unix_path is None:
            transport, protocol = await runtime.loop.create_connection(
                self._aio_protocol,
                self.host,
                self.port,
                ssl=ssl_context,
                server_hostname=self.server_name,
                ssl_handshake_timeout=handshake_timeout,
            )
        else:
            # our own socket: uvloop's create_unix_connection(path=) cannot dial abstract names
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await runtime.loop.sock_connect(sock, self.unix_path)
                transport, protocol = await runtime.loop.create_unix_connection(
                    self._aio_protocol,
                    sock=sock,
                    ssl=ssl_context,
                    server_hostname=self.server_name,
                    ssl_handshake_timeout=handshake_timeout,
                )
            except BaseException:
                sock.close()
                raise
        if tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            try:
                _check_alpn(None if ssl_object is None else ssl_object.selected_alpn_protocol())
            except ConnectionError:
                transport.abort()
                raise
        return protocol

    async def _connect_anyio(self) -> anyio.abc.ByteStream:
        """The byte stream on other anyio backends: TCP or a unix socket, wrapped in anyio's TLS
        stream when the channel has TLS (connect and handshake bounded by its timeout)."""
        tls = self._config.tls
        if tls is None:
            if self.unix_path is not None:
                return await anyio.connect_unix(self.unix_path)
            return await anyio.connect_tcp(self.host, self.port)
        assert self.server_name is not None
        with anyio.fail_after(tls.handshake_timeout):
            if self.unix_path is None:
                byte_stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                    self.host,
                    self.port,
                    ssl_context=tls.context,
                    tls_hostname=self.server_name,
                    tls_standard_compatible=False,
                )
            else:
                unix_stream = await anyio.connect_unix(self.unix_path)
                try:
                    byte_stream = await TLSStream.wrap(
                        unix_stream,
                        hostname=self.server_name,
                        ssl_context=tls.context,
                        standard_compatible=False,
                    )
                except BaseException:
                    await anyio.aclose_forcefully(unix_stream)
                    raise
        try:
            _check_alpn(byte_stream.extra(TLSAttribute.alpn_protocol, None))
        except ConnectionError:
            await anyio.aclose_forcefully(byte_stream)
            raise
        return byte_stream

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
            log.debug("%s sent GOAWAY (last stream %d)", self.label, last_stream_id)
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
