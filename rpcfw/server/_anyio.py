"""Serving on any anyio backend (asyncio or trio): ``Server.serve()``.

One task group per listener, one per connection (its handler tasks live in it), and the
transport's anyio layer underneath. Cancelling the task group that runs ``serve()`` stops the
server: every connection gets a GOAWAY, handlers are cancelled at once (no grace: their
clients see the connection end), and sockets close.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .._guard import AnyioCallGuard
from .._status import Status
from .._unix import BoundUnixSocket, bind_unix, listening_address, parse_unix, remove_socket_file
from .._wire import trailers_for
from ..transport import H2Connection, Stream
from ..transport.anyio_io import AnyioConnection
from ._context import RESPONSE_HEADERS
from ._dispatch import handle_request

if TYPE_CHECKING:
    from .server import Server

__all__ = ["serve_anyio"]

log = logging.getLogger("rpcfw.server")

_UNIX_BACKLOG = 1024


class _AnyioServerConnection:
    """Owner of one accepted connection on the anyio layer: one handler task per call."""

    def __init__(self, server: Server, handlers: anyio.abc.TaskGroup) -> None:
        self.server = server
        self.handlers = handlers

    def on_connection_made(self, conn: AnyioConnection) -> None:
        self.server.stats.connections_accepted += 1
        self.server._anyio_connections.add(conn)

    def on_request(self, conn: AnyioConnection, stream: Stream) -> None:
        self.server.stats.calls_started += 1
        guard = AnyioCallGuard()
        stream.watcher = guard.cancel  # reset or connection lost: wake the handler
        self.handlers.start_soon(handle_request, self.server._dispatch, conn, stream, guard)

    def on_goaway(self, conn: AnyioConnection, last_stream_id: int, code: int) -> None:
        pass

    def on_ping_ack(self, conn: AnyioConnection, data: bytes) -> None:
        pass

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
        self.server._anyio_connections.discard(conn)
        self.server.stats.connection_ended(conn.core, conn.peer, reason)


async def _serve_connection(server: Server, byte_stream: anyio.abc.ByteStream) -> None:
    async with anyio.create_task_group() as handlers:
        conn = AnyioConnection(
            H2Connection(server._h2_config, client=False),
            _AnyioServerConnection(server, handlers),
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
    try:
        async with listener:
            sockname = listener.extra(anyio.abc.SocketAttribute.local_address)
            server.host, server.port = listening_address(sockname)
            server._mark_serving()
            log.info("serving %s on %s (anyio)", ", ".join(server.services), server.address)
            task_status.started(server.port)

            async def handle(byte_stream: anyio.abc.ByteStream) -> None:
                await _serve_connection(server, byte_stream)

            await listener.serve(handle)
    finally:
        if bound is not None:
            remove_socket_file(bound)
