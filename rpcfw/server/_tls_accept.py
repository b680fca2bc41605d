"""Accepting TLS connections: the handshake, ALPN, the peer's identity, then HTTP/2.

A TLS listener's protocol (``TlsAcceptor``) pauses the new socket and runs the handshake with
``loop.start_tls`` in a task the server owns, bounded by the ``ServerTLS`` handshake timeout.
Only a connection that completed it and chose ALPN ``h2`` gets an HTTP/2 connection (the
server's usual ``AioConnection``, with the verified client certificate as ``peer_identity``);
any other is counted (``ServerStats.tls_handshakes_failed``), logged with the reason, and
closed. Doing the handshake here, not through ``create_server(ssl=...)``, is what lets a
failure be seen at all: asyncio drops failed handshakes silently.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .._unix import peer_name
from ..tls import ALPN_H2, ServerTLS, peer_identity

if TYPE_CHECKING:
    from ..transport import AioConnection
    from .server import ServerStats

__all__ = ["AlpnGate", "TlsAcceptor", "TlsHandshakes", "loop_can_start_tls_on_accept"]

log = logging.getLogger("rpcfw.server")


class TlsHandshakes:
    """The handshake tasks of a server's TLS listeners (cancelled when the server stops)."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.tasks: set[asyncio.Task[None]] = set()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def wait(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks))


class TlsAcceptor(asyncio.Protocol):
    """The protocol of one accepted TCP connection until its TLS handshake is done; then the
    HTTP/2 protocol takes over the TLS transport (bytes that arrived in between included)."""

    def __init__(
        self,
        tls: ServerTLS,
        handshakes: TlsHandshakes,
        make_protocol: Callable[[], AioConnection],
    ) -> None:
        self._tls = tls
        self._handshakes = handshakes
        self._make_protocol = make_protocol
        self._early: list[bytes] = []  # decrypted bytes before the HTTP/2 protocol took over
        self._lost: tuple[BaseException | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass: duck-typed
        transport = cast(asyncio.Transport, transport)
        transport.pause_reading()  # the ClientHello waits for start_tls
        name = peer_name(transport.get_extra_info("peername"))
        task = asyncio.get_running_loop().create_task(self._handshake(transport, name))
        self._handshakes.tasks.add(task)
        task.add_done_callback(self._handshakes.tasks.discard)

    def data_received(self, data: bytes) -> None:
        self._early.append(data)  # after the handshake, before the task resumed

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = (exc,)

    async def _handshake(self, transport: asyncio.Transport, peer: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls_transport = await loop.start_tls(
                transport,
                self,
                self._tls.context,
                server_side=True,
                ssl_handshake_timeout=self._tls.handshake_timeout,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError and ConnectionError included
            self._failed(peer, _reason(exc))
            transport.abort()
            return
        except BaseException:
            transport.abort()
            raise
        if tls_transport is None or self._lost is not None:
            self._failed(peer, "connection closed during the handshake")
            return
        ssl_object = tls_transport.get_extra_info("ssl_object")
        alpn = None if ssl_object is None else ssl_object.selected_alpn_protocol()
        if alpn != ALPN_H2:
            self._failed(peer, f"the client did not negotiate ALPN h2 (it chose {alpn!r})")
            tls_transport.abort()
            return
        protocol = self._make_protocol()
        protocol.peer_identity = peer_identity(ssl_object.getpeercert())
        tls_transport.set_protocol(protocol)
        protocol.connection_made(tls_transport)
        for data in self._early:
            protocol.data_received(data)
        self._early.clear()
        lost = self._lost_meanwhile()
        if lost is not None:  # closed while the bytes above were handed over
            protocol.connection_lost(lost[0])

    def _lost_meanwhile(self) -> tuple[BaseException | None] | None:
        return self._lost

    def _failed(self, peer: str, reason: str) -> None:
        self._handshakes.stats.tls_handshakes_failed += 1
        log.warning("TLS handshake with %s failed: %s", peer, reason)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.library or 'ssl'})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def loop_can_start_tls_on_accept(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``TlsAcceptor`` works on this loop: asyncio's own pauses a new socket before
    its first read; uvloop reads the ClientHello at once, before ``start_tls`` could take it."""
    return isinstance(loop, asyncio.BaseEventLoop)


class AlpnGate(asyncio.Protocol):
    """On loops where the loop itself runs the TLS handshake (``create_server(ssl=...)``):
    checks ALPN ``h2`` and hands the connection, with the peer's identity, to HTTP/2. Failed
    handshakes are not seen here (the loop drops them): they are not counted."""

    def __init__(
        self, handshakes: TlsHandshakes, make_protocol: Callable[[], AioConnection]
    ) -> None:
        self._handshakes = handshakes
        self._make_protocol = make_protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = None if ssl_object is None else ssl_object.selected_alpn_protocol()
        if alpn != ALPN_H2:
            peer = peer_name(transport.get_extra_info("peername"))
            self._handshakes.stats.tls_handshakes_failed += 1
            log.warning(
                "TLS handshake with %s failed: the client did not negotiate ALPN h2 "
                "(it chose %r)", peer, alpn,
            )  # fmt: skip
            cast(asyncio.Transport, transport).abort()
            return
        protocol = self._make_protocol()
        protocol.peer_identity = peer_identity(ssl_object.getpeercert())
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
