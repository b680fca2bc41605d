"""Keepalive, max connection idle, max connection age and grace, on real sockets (127.0.0.1).

Each test injects one condition (a peer that never acks PINGs, a server that stops answering,
an idle connection, a connection past its age, a call that outlives the grace) and checks what
the other side saw: frames on the wire, connection counts, call statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw import ConnectionAge, KeepaliveConfig, Status
from rpcfw.transport import AioConnection, H2Connection, Stream
from rpcfw.transport.frames import CONNECTION_PREFACE, FrameType, settings_frame
from tests.echo_service import make_echo_service, wait_until

LIVENESS = 10.0  # generous bound: only a hang trips it


async def _read_frames_until_eof(reader: asyncio.StreamReader) -> list[tuple[int, int, bytes]]:
    """(type, flags, payload) of every frame until the peer closes."""
    frames = []
    async with asyncio.timeout(LIVENESS):
        while True:
            try:
                header = await reader.readexactly(9)
            except asyncio.IncompleteReadError:
                return frames
            high, low, kind, flags, _ = struct.unpack(">BHBBL", header)
            payload = await reader.readexactly((high << 16) | low)
            frames.append((kind, flags, payload))


async def test_server_keepalive_closes_a_connection_whose_peer_never_acks_pings(
    echo_pb: ModuleType,
) -> None:
    server = rpcfw.Server(
        [], keepalive=KeepaliveConfig(time=0.1, timeout=0.1, permit_without_calls=True)
    )
    await server.start()
    try:
        assert server.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(CONNECTION_PREFACE + settings_frame([]))  # then never a PING ack
        frames = await _read_frames_until_eof(reader)
        writer.close()
        pings = [f for f in frames if f[0] == FrameType.PING and not f[1] & 1]
        goaways = [f for f in frames if f[0] == FrameType.GOAWAY]
        assert len(pings) == 1  # one unanswered PING, then the close
        assert goaways and goaways[-1][2][8:] == b"keepalive ping not acknowledged"
    finally:
        await server.stop(grace=0)


async def test_server_keepalive_keeps_a_connection_whose_peer_acks(echo_pb: ModuleType) -> None:
    server = rpcfw.Server(
        [make_echo_service(echo_pb, "s1")],
        keepalive=KeepaliveConfig(time=0.05, timeout=5.0, permit_without_calls=True),
    )
    await server.start()
    try:
        async with rpcfw.Channel(server.address) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(message="a"))
            (conn,) = server._connections
            assert conn.protocol is not None
            protocol = conn.protocol
            await wait_until(lambda: protocol.keepalive_pings_sent >= 3, within=LIVENESS)
            reply = await stub.unary(echo_pb.EchoRequest(message="b"))
            assert reply.message == "b"
            assert server.stats.connections_accepted == 1  # the same connection throughout
    finally:
        await server.stop(grace=0)


class _ClientOwner:
    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.reason = ""

    def on_connection_made(self, conn: AioConnection) -> None: ...
    def on_request(self, conn: AioConnection, stream: Stream) -> None: ...
    def on_goaway(self, conn: AioConnection, last_stream_id: int, code: int) -> None: ...
    def on_ping_ack(self, conn: AioConnection, data: bytes) -> None: ...
    def on_idle(self, conn: AioConnection) -> None: ...

    def on_closed(self, conn: AioConnection, reason: str) -> None:
        self.reason = reason
        self.closed.set()


async def test_client_keepalive_detects_a_server_that_stopped_answering() -> None:
    """The 'server' completes the handshake, then goes silent with its socket open."""
    handshake_done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readexactly(len(CONNECTION_PREFACE))
        writer.write(settings_frame([]))
        handshake_done.set()

    listener = await asyncio.start_server(silent_server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    owner = _ClientOwner()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        lambda: AioConnection(
            H2Connection(client=True),
            owner,
            keepalive=KeepaliveConfig(time=0.05, timeout=0.1, permit_without_calls=True),
        ),
        "127.0.0.1",
        port,
    )
    try:
        async with asyncio.timeout(LIVENESS):
            await handshake_done.wait()
            await owner.closed.wait()
        assert owner.reason == "keepalive ping not acknowledged"
        assert protocol.keepalive_pings_sent == 1
    finally:
        transport.close()
        for writer in writers:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_client_keepalive_sends_no_pings_without_calls_unless_permitted() -> None:
    server = rpcfw.Server([], keepalive=None)
    await server.start()
    owner = _ClientOwner()
    loop = asyncio.get_running_loop()
    assert server.port is not None
    transport, protocol = await loop.create_connection(
        lambda: AioConnection(
            H2Connection(client=True), owner, keepalive=KeepaliveConfig(time=0.01, timeout=5.0)
        ),
        "127.0.0.1",
        server.port,
    )
    try:
        await wait_until(lambda: protocol.handshake_done, within=LIVENESS)
        # several keepalive periods pass with no call in flight: the timer stays dormant
        for _ in range(5):
            timer = protocol._keepalive_timer
            await wait_until(lambda t=timer: protocol._keepalive_timer is not t, within=LIVENESS)
        assert protocol.keepalive_pings_sent == 0
    finally:
        transport.close()
        await server.stop(grace=0)


class _Gated:
    """An Echo service whose unary waits for ``gate`` (the test decides when a call ends)."""

    def __init__(self, echo: ModuleType) -> None:
        gate = self.gate = asyncio.Event()
        self.started = asyncio.Event()
        started = self.started
        response = echo.EchoResponse

        echo_class: Any = type(make_echo_service(echo, "gated"))

        class Service(echo_class):  # type: ignore[misc,valid-type]
            async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
                if request.message == "wait":
                    started.set()
                    await gate.wait()
                return response(message=request.message)

        self.service = Service()
        self.echo = echo

    @contextlib.asynccontextmanager
    async def serving(self, age: ConnectionAge) -> AsyncIterator[tuple[rpcfw.Server, Any]]:
        """The service on a server with ``age``, and a stub on a channel to it; on exit the
        gate opens (no call stays parked) and the server stops."""
        server = rpcfw.Server([self.service], connection_age=age)
        await server.start()
        try:
            async with rpcfw.Channel(server.address) as channel:
                yield server, self.echo.EchoStub(channel)
        finally:
            self.gate.set()
            await server.stop(grace=0)


@pytest.fixture
async def gated(echo_pb: ModuleType) -> AsyncIterator[_Gated]:
    yield _Gated(echo_pb)


async def test_max_connection_idle_closes_an_idle_connection_and_the_channel_reconnects(
    echo_pb: ModuleType, gated: _Gated
) -> None:
    async with gated.serving(ConnectionAge(max_idle=0.05)) as (server, stub):
        await stub.unary(echo_pb.EchoRequest(message="one"))
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        reply = await stub.unary(echo_pb.EchoRequest(message="two"))
        assert reply.message == "two"
        assert server.stats.connections_accepted == 2


async def test_max_connection_idle_spares_a_connection_with_a_call_in_flight(
    echo_pb: ModuleType, gated: _Gated
) -> None:
    async with gated.serving(ConnectionAge(max_idle=0.05)) as (server, stub):
        call = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(message="wait")))
        await gated.started.wait()
        (conn,) = server._connections
        # several idle periods pass while the call runs: no idle timer is armed
        assert conn._idle_timer is None
        gated.gate.set()
        assert (await call).message == "wait"
        assert server.stats.connections_accepted == 1


async def test_max_connection_age_drains_and_the_call_in_flight_finishes_ok(
    echo_pb: ModuleType, gated: _Gated
) -> None:
    async with gated.serving(ConnectionAge(max_age=0.05)) as (server, stub):
        call = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(message="wait")))
        await gated.started.wait()
        (conn,) = server._connections
        await wait_until(lambda: conn.draining, within=LIVENESS)  # GOAWAY sent
        gated.gate.set()
        assert (await call).message == "wait"
        reply = await stub.unary(echo_pb.EchoRequest(message="next"))
        assert reply.message == "next"
        assert server.stats.connections_accepted >= 2  # the next call needed a new one


async def test_max_connection_age_grace_ends_a_call_still_running_with_unavailable(
    echo_pb: ModuleType, gated: _Gated
) -> None:
    async with gated.serving(ConnectionAge(max_age=0.05, grace=0.05)) as (_, stub):
        with pytest.raises(rpcfw.RpcError) as info:
            await stub.unary(echo_pb.EchoRequest(message="wait"), timeout=LIVENESS)
        assert info.value.status is Status.UNAVAILABLE
        assert "maximum age" in (info.value.message or "")


async def test_channel_keepalive_replaces_a_connection_to_a_server_that_went_silent(
    echo_pb: ModuleType,
) -> None:
    """Fault: the server's connection stops answering (frozen: it reads but never replies). The
    channel's keepalive closes it, and the next call goes out on a new connection."""
    server = rpcfw.Server(
        [make_echo_service(echo_pb, "s1")],
        http2=rpcfw.H2Config(permit_pings_without_calls=True, min_ping_interval=0),
    )
    await server.start()
    try:
        async with rpcfw.Channel(
            server.address,
            keepalive=KeepaliveConfig(time=0.05, timeout=0.1, permit_without_calls=True),
        ) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(message="a"))
            (conn,) = server._connections
            assert conn.protocol is not None
            frozen = conn.protocol
            frozen.core.data_to_send = lambda: b""  # type: ignore[method-assign]  # goes silent
            await wait_until(
                lambda: frozen not in [c.protocol for c in server._connections], within=LIVENESS
            )
            reply = await stub.unary(echo_pb.EchoRequest(message="b"), timeout=LIVENESS)
            assert reply.message == "b"
            assert server.stats.connections_accepted == 2
    finally:
        await server.stop(grace=0)
