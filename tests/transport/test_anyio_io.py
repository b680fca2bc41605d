"""The anyio IO layer on both anyio backends (asyncio and trio), over real TCP on 127.0.0.1.

A client AnyioConnection and a server AnyioConnection exchange requests through the shared
Stream API: small and large (flow-controlled) bodies, cancellation of the task that runs the
server connection, keepalive against a silent peer, and the handshake timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

from rpcfw.transport import H2Connection, Stream
from rpcfw.transport.anyio_io import AnyioConnection
from rpcfw.transport.frames import CONNECTION_PREFACE, settings_frame
from rpcfw.transport.keepalive import KeepaliveConfig
from rpcfw.transport.stream import ConnectionLostError, StreamResetError

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it
REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/t.S/M"),
    (":authority", "x"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
]

Handler = Callable[[Stream], Awaitable[None]]


class Owner:
    """Runs a handler per request in the owner's task group; records what happened."""

    def __init__(self, group: anyio.abc.TaskGroup | None = None, handler: Handler | None = None):
        self.group = group
        self.handler = handler
        self.closed = anyio.Event()
        self.reason = ""
        self.requests = 0

    def on_connection_made(self, conn: AnyioConnection) -> None: ...

    def on_request(self, conn: AnyioConnection, stream: Stream) -> None:
        self.requests += 1
        assert self.group is not None and self.handler is not None
        self.group.start_soon(self._run, stream)

    async def _run(self, stream: Stream) -> None:
        assert self.handler is not None
        try:
            await self.handler(stream)
        finally:
            stream.release()

    def on_goaway(self, conn: AnyioConnection, last_stream_id: int, code: int) -> None: ...
    def on_ping_ack(self, conn: AnyioConnection, data: bytes) -> None: ...
    def on_idle(self, conn: AnyioConnection) -> None: ...
    def on_shutdown(self, conn: AnyioConnection) -> None: ...

    def on_closed(self, conn: AnyioConnection, reason: str) -> None:
        self.reason = reason
        self.closed.set()


async def read_body(stream: Stream) -> bytes:
    """Everything the peer sends on ``stream``, taken (and so credited) as it arrives."""
    parts = []
    while await stream.fill(1):
        parts.append(stream.take(stream.buffered))
    return b"".join(parts)


async def echo_body(stream: Stream) -> None:
    """Reads the whole request body, answers it back with headers and trailers."""
    body = await read_body(stream)
    stream.send_headers([(":status", "200"), ("content-type", "application/grpc")])
    await stream.send_data(body)
    stream.send_headers([("grpc-status", "0")], end_stream=True)
    await stream.drain()


async def _listen() -> anyio.abc.SocketListener:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    (listener,) = multi.listeners
    assert isinstance(listener, anyio.abc.SocketListener)
    return listener


async def _pair(
    group: anyio.abc.TaskGroup, handler: Handler, **server_options: Any
) -> tuple[AnyioConnection, AnyioConnection, Owner, anyio.abc.SocketListener]:
    listener = await _listen()
    server_owner = Owner(group, handler)
    accepted: list[AnyioConnection] = []
    ready = anyio.Event()

    async def accept_one() -> None:
        byte_stream = await listener.accept()
        conn = AnyioConnection(
            H2Connection(client=False), server_owner, byte_stream, **server_options
        )
        accepted.append(conn)
        ready.set()
        await conn.run()

    group.start_soon(accept_one)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client_stream = await anyio.connect_tcp("127.0.0.1", port)
    client = AnyioConnection(H2Connection(client=True), Owner(), client_stream)
    group.start_soon(client.run)
    await ready.wait()
    return client, accepted[0], server_owner, listener


async def _call(client: AnyioConnection, body: bytes) -> tuple[list[tuple[str, str]], bytes]:
    await client.wait_for_stream_slot()
    stream = client.open_stream(REQUEST)
    await stream.send_data(body, end_stream=True)
    headers = await stream.wait_headers()
    reply = await read_body(stream)
    await stream.wait_end()
    assert stream.trailers == [("grpc-status", "0")]
    stream.release()
    return headers, reply


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_layer_carries_a_request_and_its_answer(backend: str) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as group:
            client, _, server_owner, listener = await _pair(group, echo_body)
            with anyio.fail_after(LIVENESS):
                headers, reply = await _call(client, b"hello")
            assert headers[0] == (":status", "200")
            assert reply == b"hello"
            assert server_owner.requests == 1
            group.cancel_scope.cancel()
        await listener.aclose()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_layer_moves_bodies_larger_than_every_window(backend: str) -> None:
    """3 MiB each way: more than the 1 MiB stream window and the 64 KiB initial connection
    window, so both sides depend on WINDOW_UPDATEs and queued output."""

    async def main() -> None:
        body = bytes(range(256)) * (3 * 4096)
        async with anyio.create_task_group() as group:
            client, _, _, listener = await _pair(group, echo_body)
            with anyio.fail_after(LIVENESS):
                _, reply = await _call(client, body)
            assert reply == body
            group.cancel_scope.cancel()
        await listener.aclose()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_the_task_that_runs_a_server_connection_closes_it_cleanly(
    backend: str,
) -> None:
    async def main() -> None:
        handler_started = anyio.Event()

        async def hang(stream: Stream) -> None:
            handler_started.set()
            await anyio.sleep_forever()

        listener = await _listen()
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as outer:
            client_owner = Owner()
            client = AnyioConnection(
                H2Connection(client=True), client_owner, await anyio.connect_tcp("127.0.0.1", port)
            )
            server_conns: list[AnyioConnection] = []
            with anyio.CancelScope() as server_scope:
                async with anyio.create_task_group() as server_group:

                    async def serve() -> None:
                        conn = AnyioConnection(
                            H2Connection(client=False),
                            Owner(server_group, hang),
                            await listener.accept(),
                        )
                        server_conns.append(conn)
                        await conn.run()

                    server_group.start_soon(serve)
                    outer.start_soon(client.run)
                    stream = client.open_stream(REQUEST, end_stream=True)
                    with anyio.fail_after(LIVENESS):
                        await handler_started.wait()
                    server_scope.cancel()  # as an app cancelling the task group that serves
            (server_conn,) = server_conns
            assert server_conn.closed
            with anyio.fail_after(LIVENESS):
                await client_owner.closed.wait()  # the client saw the connection end
                # its stream ended too: reset by the cancelled handler, or lost with the socket
                with pytest.raises((ConnectionLostError, StreamResetError)):
                    await stream.wait_headers()
            outer.cancel_scope.cancel()
        await listener.aclose()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_keepalive_closes_a_connection_to_a_silent_peer(backend: str) -> None:
    async def main() -> None:
        listener = await _listen()
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as group:

            async def silent() -> None:  # handshake, then never another byte
                async with await listener.accept() as peer:
                    await peer.send(settings_frame([]))
                    await anyio.sleep_forever()

            group.start_soon(silent)
            owner = Owner()
            conn = AnyioConnection(
                H2Connection(client=True),
                owner,
                await anyio.connect_tcp("127.0.0.1", port),
                keepalive=KeepaliveConfig(time=0.05, timeout=0.1, permit_without_calls=True),
            )
            group.start_soon(conn.run)
            with anyio.fail_after(LIVENESS):
                await owner.closed.wait()
            assert owner.reason == "keepalive ping not acknowledged"
            assert conn.keepalive_pings_sent == 1
            group.cancel_scope.cancel()
        await listener.aclose()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_handshake_timeout_closes_a_connection_that_never_sends_settings(
    backend: str,
) -> None:
    async def main() -> None:
        listener = await _listen()
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as group:
            owner = Owner()
            done = anyio.Event()

            async def serve() -> None:
                conn = AnyioConnection(
                    H2Connection(client=False),
                    owner,
                    await listener.accept(),
                    handshake_timeout=0.05,
                )
                await conn.run()
                done.set()

            group.start_soon(serve)
            peer = await anyio.connect_tcp("127.0.0.1", port)
            await peer.send(CONNECTION_PREFACE)  # and no SETTINGS
            with anyio.fail_after(LIVENESS):
                await done.wait()
            assert owner.reason == "handshake timeout"
            await peer.aclose()
        await listener.aclose()

    anyio.run(main, backend=backend)
