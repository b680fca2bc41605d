"""Is asyncio's TLS layer the cost? A bare echo of 100 KiB messages over TLS, no rpcfw.

    python benchmarks/tls_layer_echo.py            # 3 rounds of 2,000 round trips (~10 s)

A client and a server in one process and loop bounce a 100 KiB message back and forth; the
figure is this process's CPU time per round trip (both sides: each encrypts 100 KiB and
decrypts 100 KiB), for three paths:

- ``plaintext``: no TLS;
- ``sslproto``: asyncio's TLS (``create_server(ssl=...)`` / ``create_connection(ssl=...)``);
- ``owned``: a minimal TLS layer written for this comparison, ``ssl.SSLObject`` over two memory
  BIOs on a plain transport (no flow control, no shutdown: just the data path).

If ``owned`` were much cheaper than ``sslproto``, an rpcfw-owned TLS layer would pay; the run
on 2026-11-26 had them within about 10 % (205-231 vs 213-255 µs; plaintext about 45 µs). The
apps copy each read out of the lent buffer, as rpcfw's connection does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import statistics
import time
from typing import Any

import trustme

SIZE = 100 * 1024
MESSAGE = b"x" * SIZE


class EchoApp(asyncio.BufferedProtocol):
    """The server echoes each whole message; the client sends the next one ``rounds`` times."""

    def __init__(self, server: bool, done: asyncio.Future[None] | None = None, rounds: int = 0):
        self.server, self.done, self.rounds = server, done, rounds
        self.buffer = memoryview(bytearray(256 * 1024))
        self.pending = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        bytes(self.buffer[:nbytes])  # the copy rpcfw's connection makes
        self.pending += nbytes
        while self.pending >= SIZE:
            self.pending -= SIZE
            if self.server:
                self.transport.write(MESSAGE)
                continue
            self.rounds -= 1
            if self.rounds > 0:
                self.transport.write(MESSAGE)
            elif self.done is not None:
                self.done.set_result(None)


class OwnedTls(asyncio.BufferedProtocol):
    """TLS on a plain transport: ``ssl.SSLObject`` over memory BIOs, the app behind it."""

    def __init__(
        self, ctx: ssl.SSLContext, server: bool, app: EchoApp, ready: asyncio.Future[None]
    ) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server else "localhost"
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server, hostname)
        self.app, self.ready, self.handshaken = app, ready, False
        self.raw = memoryview(bytearray(256 * 1024))
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._handshake()

    def _handshake(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
            self.handshaken = True
        self._flush()
        if self.handshaken:
            self.app.connection_made(self)
            if not self.ready.done():
                self.ready.set_result(None)

    def _flush(self) -> None:
        if self.outgoing.pending:
            self.transport.write(self.outgoing.read())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.raw

    def buffer_updated(self, nbytes: int) -> None:
        self.incoming.write(self.raw[:nbytes])
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return
        view, filled = self.app.buffer, 0
        with contextlib.suppress(ssl.SSLWantReadError):
            while count := self.tls.read(len(view) - filled, view[filled:]):
                filled += count
                if filled == len(view):
                    self.app.buffer_updated(filled)
                    filled = 0
        if filled:
            self.app.buffer_updated(filled)
        self._flush()

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()


async def round_trip_cpu(path: str, rounds: int) -> float:
    """Microseconds of CPU per round trip on ``path``."""
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    client = EchoApp(False, done, rounds)
    if path == "owned":
        ready: asyncio.Future[None] = loop.create_future()
        server = await loop.create_server(
            lambda: OwnedTls(server_ctx, True, EchoApp(True), loop.create_future()),
            "127.0.0.1",
            0,
        )
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            lambda: OwnedTls(client_ctx, False, client, ready), "127.0.0.1", port
        )
        await ready
    else:
        tls = path == "sslproto"
        server = await loop.create_server(
            lambda: EchoApp(True), "127.0.0.1", 0, ssl=server_ctx if tls else None
        )
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            lambda: client,
            "127.0.0.1",
            port,
            ssl=client_ctx if tls else None,
            server_hostname="localhost" if tls else None,
        )
    started = time.process_time()
    client.transport.write(MESSAGE)
    await done
    cpu = time.process_time() - started
    transport.close()
    server.close()
    return cpu / rounds * 1e6


async def main(rounds: int, repeats: int) -> None:
    results: dict[str, list[float]] = {"plaintext": [], "sslproto": [], "owned": []}
    for _ in range(repeats):
        for path in results:
            results[path].append(await round_trip_cpu(path, rounds))
    print("| path | CPU per 100 KiB round trip (both sides), median | each |")
    print("|---|---|---|")
    for path, values in results.items():
        each = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {path} | {statistics.median(values):.0f} µs | {each} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.repeats))
