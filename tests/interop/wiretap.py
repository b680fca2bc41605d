"""A TCP proxy that records the HTTP/2 frames passing through it, in both directions.

Some wire facts are invisible through the peers' APIs: grpcio's server cancels its handler for
any RST_STREAM, whatever the error code, so only the frame itself shows that rpcfw resets a
cancelled call with CANCEL (8) where grpclib used NO_ERROR (0).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

__all__ = ["GOAWAY", "RST_STREAM", "Frame", "WireTap"]

RST_STREAM = 0x3
GOAWAY = 0x7
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass(frozen=True)
class Frame:
    direction: str  # "client" (client -> server) or "server"
    type: int
    flags: int
    stream_id: int
    payload: bytes  # the first 64 bytes
    length: int = 0  # of the whole payload

    @property
    def error_code(self) -> int:
        """The error code of a RST_STREAM or GOAWAY frame."""
        offset = 4 if self.type == GOAWAY else 0
        return int.from_bytes(self.payload[offset : offset + 4], "big")


class WireTap:
    """``await tap.start(upstream_port)`` listens on ``tap.port`` and forwards to upstream."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._upstream_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def sent(self, direction: str, frame_type: int) -> list[Frame]:
        return [f for f in self.frames if f.direction == direction and f.type == frame_type]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            writer.transport.abort()  # upstream is down: the client sees the connection refused
            return
        self._writers.append(up_writer)
        for args in ((reader, up_writer, "client"), (up_reader, writer, "server")):
            task = asyncio.ensure_future(self._pump(*args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        buffer = b""
        preface = direction == "client"
        try:
            while data := await reader.read(65536):
                writer.write(data)
                buffer += data
                if preface and len(buffer) >= len(_PREFACE):
                    buffer, preface = buffer[len(_PREFACE) :], False
                while not preface and len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    stream_id = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    self.frames.append(
                        Frame(
                            direction,
                            buffer[3],
                            buffer[4],
                            stream_id,
                            buffer[9 : 9 + min(length, 64)],
                            length,
                        )
                    )
                    buffer = buffer[9 + length :]
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def sever(self) -> None:
        """Fault: drop every proxied connection at once (both sockets reset, nothing flushed)."""
        for writer in self._writers:
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
