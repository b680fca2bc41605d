"""Opening a server's listeners: TCP or a unix socket, plaintext or TLS."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable

from .._unix import BoundUnixSocket, bind_unix, parse_unix, remove_socket_file
from ..tls import ServerTLS
from ..transport import AioConnection
from ._tls_accept import AlpnGate, TlsAcceptor, TlsHandshakes, loop_can_start_tls_on_accept

__all__ = ["listen"]


async def listen(
    host: str,
    port: int,
    backlog: int,
    tls: ServerTLS | ssl.SSLContext | None,
    make_protocol: Callable[[], AioConnection],
    handshakes: TlsHandshakes,
) -> tuple[asyncio.Server, BoundUnixSocket | None]:
    """A listener on ``host:port`` (or the unix socket ``host`` names: ``unix:/path``,
    ``unix-abstract:name``; the port is then ignored), with the socket it bound for a unix
    one (its file is the server's to remove). Over TLS when ``tls`` is given: each
    connection's handshake runs in a ``TlsAcceptor`` first."""
    factory: Callable[[], asyncio.BaseProtocol] = make_protocol
    loop = asyncio.get_running_loop()
    ssl_context: ssl.SSLContext | None = None  # when the loop runs the handshake itself
    handshake_timeout: float | None = None
    if tls is not None:
        server_tls = tls if isinstance(tls, ServerTLS) else ServerTLS(context=tls)
        if loop_can_start_tls_on_accept(loop):
            factory = functools.partial(TlsAcceptor, server_tls, handshakes, make_protocol)
        else:  # uvloop
            factory = functools.partial(AlpnGate, handshakes, make_protocol)
            ssl_context, handshake_timeout = server_tls.context, server_tls.handshake_timeout
    unix = parse_unix(host)
    if unix is None:
        listener = await loop.create_server(
            factory,
            host,
            port,
            backlog=backlog,
            reuse_address=True,
            ssl=ssl_context,
            ssl_handshake_timeout=handshake_timeout,
        )
        return listener, None
    # a stale socket file is replaced; a live one, or a path that is not a socket, raises
    bound = bind_unix(unix, backlog)
    try:
        listener = await loop.create_unix_server(
            factory,
            sock=bound.sock,
            backlog=backlog,
            ssl=ssl_context,
            ssl_handshake_timeout=handshake_timeout,
        )
    except BaseException:
        bound.sock.close()
        remove_socket_file(bound)
        raise
    return listener, bound
