"""ClientConnection: one HTTP/2 connection from a channel to one address."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, Stream

from .._h2 import ConnectionEvents, RpcfwProtocol

__all__ = ["ClientConnection"]

log = logging.getLogger("rpcfw.client")


class _ClientHandler(AbstractHandler):
    """Servers cannot start streams on a client connection: refuse any."""

    def accept(self, stream: Stream, headers: Any, release_stream: Callable[[], Any]) -> None:
        stream.reset_nowait()
        release_stream()

    def cancel(self, stream: Stream) -> None:
        pass

    def close(self) -> None:
        pass


class ClientConnection(ConnectionEvents):
    """Tracks its own state: connected, draining (peer sent GOAWAY), closed."""

    def __init__(
        self,
        host: str,
        port: int,
        config: Configuration,
        on_change: Callable[[ClientConnection], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._config = config
        self._on_change = on_change
        self.protocol: RpcfwProtocol | None = None
        self.draining = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "draining" if self.draining else "open"
        return f"<ClientConnection {self.host}:{self.port} {state}>"

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: RpcfwProtocol(_ClientHandler(), self._config, self, client_side=True),
            self.host,
            self.port,
        )
        self.protocol = protocol

    @property
    def ready(self) -> bool:
        """Usable for new calls."""
        return (
            not self.draining
            and not self.closed
            and self.protocol is not None
            and self.protocol.is_open()
        )

    def close(self) -> None:
        self.closed = True
        if self.protocol is not None:
            self.protocol.close()

    def drain(self) -> None:
        """No new calls; close once the calls in flight have finished."""
        self.draining = True
        if self.protocol is None or not self.protocol.processor.streams:
            self.close()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    # ConnectionEvents
    def on_goaway(self, last_stream_id: int) -> None:
        if not self.draining:
            log.debug("%s:%s sent GOAWAY (last stream %d)", self.host, self.port, last_stream_id)
            self.draining = True
            self._changed()
        if self.protocol is not None and not self.protocol.processor.streams:
            self.close()

    def on_idle(self) -> None:
        if self.draining:
            self.close()

    def on_closed(self) -> None:
        self.closed = True
        self._changed()
