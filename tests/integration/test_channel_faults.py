"""Client-side faults around a channel's connections, each test named after the fault it injects:
a removed endpoint still draining when the channel closes, a connect that is slow to cancel while
the closer gets cancelled, a server restarted while the channel is idle, and a connection that
dies between the pick and the stream's opening. Servers run on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw import Status
from rpcfw.balancer.base import ConnectivityState
from rpcfw.client._connection import ClientConnection
from rpcfw.client._subchannel import Subchannel
from rpcfw.endpoint import Endpoint
from tests.echo_service import make_echo_service, wait_until

from .manual_resolver import publish

LIVENESS = 10.0  # generous bound on operations that must not hang (not a timing assertion)
_names = itertools.count()
_CLIENT_CODE = tuple(
    str(Path(rpcfw.__file__).parent / part) for part in ("client", "resolver", "registry")
)


def client_tasks() -> list[asyncio.Task[Any]]:
    """Pending tasks running rpcfw's client, resolver or registry code."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and code.co_filename.startswith(_CLIENT_CODE):
            found.append(task)
    return found


def record_subchannels(channel: rpcfw.Channel) -> list[Subchannel]:
    """Every subchannel the channel creates from now on (removed ones included)."""
    core = channel._core
    made: list[Subchannel] = []
    create = core.create_subchannel

    def recording(endpoint: Endpoint) -> Any:
        subchannel = create(endpoint)
        assert isinstance(subchannel, Subchannel)
        made.append(subchannel)
        return subchannel

    core.create_subchannel = recording  # type: ignore[method-assign]
    return made


async def start_server(mod: ModuleType, server_id: str, port: int = 0, **kw: Any) -> Any:
    service = make_echo_service(mod, server_id)
    server = rpcfw.Server([service], **kw)
    await server.start("127.0.0.1", port)
    server.echo = service  # type: ignore[attr-defined]
    return server


@pytest.fixture
async def server(echo_pb: ModuleType) -> AsyncIterator[Any]:
    server = await start_server(echo_pb, "s1")
    yield server
    await server.stop(grace=0)


# -- 1. close() cuts what the balancer removed ------------------------------------------------
async def test_endpoint_removed_while_a_call_drains_on_it_is_cut_by_close(
    echo_pb: ModuleType,
) -> None:
    """Fault: the resolver drops endpoint A while a long call runs on it (A's subchannel is
    removed and left draining, with its health Watch), then the channel closes."""
    a = await start_server(echo_pb, "a")
    b = await start_server(echo_pb, "b")
    name = f"drain{next(_names)}"
    try:
        publish(name, [Endpoint("127.0.0.1", a.port)])
        channel = rpcfw.Channel(f"manual://{name}", health_check="")
        made = record_subchannels(channel)
        stub = echo_pb.EchoStub(channel)
        assert (await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)).server_id == "a"
        long_call = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(delay_ms=600_000)))
        await wait_until(lambda: a.echo.calls == 2)
        publish(name, [Endpoint("127.0.0.1", b.port)])  # A leaves: its subchannel drains
        assert (await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)).server_id == "b"
        removed = made[0]
        assert removed.is_shut_down() and removed not in channel._core.subchannels
        assert a.open_connections == 1  # still draining the long call

        async with asyncio.timeout(LIVENESS):
            await channel.close()

        assert not client_tasks()  # every task the channel started is over
        with pytest.raises(rpcfw.RpcError) as info:
            async with asyncio.timeout(LIVENESS):  # liveness bound
                await long_call
        assert info.value.status is Status.UNAVAILABLE  # cut, not left running
        await wait_until(lambda: a.open_connections == 0 and b.open_connections == 0)
        assert len(made) == 2 and all(sc.closed for sc in made)
    finally:
        await a.stop(grace=0)
        await b.stop(grace=0)


async def test_call_after_close_of_an_unused_channel_starts_nothing(echo_pb: ModuleType) -> None:
    """Fault: a call arrives after close() on a channel that never made one: it must not start
    the resolver (a DNS task) that nothing would ever close."""
    channel = rpcfw.Channel("dns:///localhost:1")
    await channel.close()
    with pytest.raises(rpcfw.ChannelClosedError):
        await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())
    assert not client_tasks()


# -- 2. cancelling the closer propagates ------------------------------------------------------
class SlowCancelConnect:
    """Fault: connecting hangs, and once cancelled it takes until ``release`` to give up."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelling = asyncio.Event()
        self.release = asyncio.Event()

    async def connect(self, conn: ClientConnection) -> None:
        self.entered.set()
        try:
            await asyncio.Event().wait()  # never
        except asyncio.CancelledError:
            self.cancelling.set()
            await self.release.wait()
            raise


async def test_cancelling_a_close_blocked_on_a_connect_slow_to_cancel_propagates(
    echo_pb: ModuleType, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = SlowCancelConnect()

    async def slow_connect(self: ClientConnection) -> None:
        await connect.connect(self)

    monkeypatch.setattr(ClientConnection, "connect", slow_connect)
    channel = rpcfw.Channel(server.address)
    made = record_subchannels(channel)
    stub = echo_pb.EchoStub(channel)
    call = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(), wait_for_ready=True))
    async with asyncio.timeout(LIVENESS):  # liveness bound
        await connect.entered.wait()

        closer = asyncio.ensure_future(channel.close())
        await connect.cancelling.wait()  # close() cancelled the connect, waits for its end
        closer.cancel()
        await asyncio.wait([closer])
    assert closer.cancelled()  # the closer's own cancellation was not swallowed

    connect.release.set()
    async with asyncio.timeout(LIVENESS):
        await channel.close()  # waits for the same closing, which went on
    assert all(sc.closed for sc in made) and not client_tasks()
    with pytest.raises(rpcfw.RpcError) as info:
        await call
    assert info.value.status is Status.UNAVAILABLE  # the channel closed under it


# -- 3. idle after a loss, and the next call connects ----------------------------------------
@pytest.mark.parametrize("balancer", ["pick_first", "round_robin"])
async def test_server_restarted_on_the_same_port_while_the_channel_is_idle_gets_the_next_call(
    echo_pb: ModuleType, balancer: str
) -> None:
    server = await start_server(echo_pb, "first")
    port = server.port
    try:
        async with rpcfw.Channel(f"127.0.0.1:{port}", balancer=balancer) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
            assert channel.state == "READY"
            for i in range(10):
                await server.stop(grace=0)  # the connection is lost
                await wait_until(lambda: channel.state == "IDLE")  # not TRANSIENT_FAILURE
                server = await start_server(echo_pb, f"s{i}", port)
                # default wait_for_ready=False: connects at once and succeeds first time
                reply = await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
                assert reply.server_id == f"s{i}"
                assert channel.state == "READY"
    finally:
        await server.stop(grace=0)


async def test_call_on_an_idle_channel_whose_server_stays_down_fails_fast(
    echo_pb: ModuleType,
) -> None:
    server = await start_server(echo_pb, "first")
    port = server.port
    try:
        async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
            await server.stop(grace=0)
            await wait_until(lambda: channel.state == "IDLE")
            with pytest.raises(rpcfw.RpcError) as info:
                async with asyncio.timeout(LIVENESS):  # no deadline: it must fail, not wait
                    await stub.unary(echo_pb.EchoRequest())
            assert info.value.status is Status.UNAVAILABLE
            assert channel.state == "TRANSIENT_FAILURE"
            server = await start_server(echo_pb, "back", port)
            reply = await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
            assert reply.server_id == "back"
    finally:
        await server.stop(grace=0)


# -- 4. the connection dies between the pick and the stream's opening -------------------------
@pytest.fixture
def open_stream_fault(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make the next stream opening meet a dead connection; the item put in says how it died."""
    mode: list[str] = []

    def kill(conn: ClientConnection) -> None:
        if mode:
            how = mode.pop()
            assert conn.protocol is not None
            if how == "closed":  # closed; the loss is reported on the next loop iteration
                conn.protocol.close()
            else:  # "unreported": closed, and the loss report never comes by itself
                conn.protocol.core.close()

    try_open, open_ = ClientConnection.try_open_stream, ClientConnection.open_stream

    def faulty_try_open(self: ClientConnection, headers: Any, end_stream: bool) -> Any:
        kill(self)
        return try_open(self, headers, end_stream)

    async def faulty_open(self: ClientConnection, headers: Any, end_stream: bool) -> Any:
        kill(self)
        return await open_(self, headers, end_stream)

    monkeypatch.setattr(ClientConnection, "try_open_stream", faulty_try_open)
    monkeypatch.setattr(ClientConnection, "open_stream", faulty_open)
    yield mode


@pytest.mark.parametrize("how", ["closed", "unreported"])
async def test_connection_dead_between_pick_and_stream_open_is_retried_on_a_fresh_one(
    echo_pb: ModuleType, server: Any, open_stream_fault: list[str], how: str
) -> None:
    async with rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
        open_stream_fault.append(how)
        async with asyncio.timeout(LIVENESS):  # liveness bound: the call must not hang
            reply = await stub.unary(echo_pb.EchoRequest(message="again"))
        assert reply.message == "again" and not open_stream_fault
        assert server.echo.calls == 2  # reached the server once
        assert server.stats.connections_accepted == 2  # on a fresh connection
        assert channel.state == "READY"


async def wait_for_a_stream_slot(
    echo_pb: ModuleType, server: Any, channel: rpcfw.Channel, hold: Any
) -> tuple[asyncio.Future[Any], Any]:
    """``hold(stub, protocol)`` takes the connection's only stream slot; then call B waits for
    a slot. Returns B and the connection's protocol."""
    stub = echo_pb.EchoStub(channel)
    await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
    (subchannel,) = channel._core.subchannels
    assert subchannel.connection is not None
    protocol = subchannel.connection.protocol
    held = hold(stub, protocol)
    await wait_until(lambda: protocol.streams)  # the slot is taken
    waiter = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(message="B")))
    await wait_until(lambda: protocol._slot_waiters)
    return held, waiter, protocol


async def test_connection_reset_while_a_call_waits_for_a_stream_slot_retries_it(
    echo_pb: ModuleType,
) -> None:
    server = await start_server(echo_pb, "s1", max_concurrent_streams=1)
    try:
        async with rpcfw.Channel(server.address) as channel:
            holder, waiter, protocol = await wait_for_a_stream_slot(
                echo_pb,
                server,
                channel,
                lambda stub, _: asyncio.ensure_future(
                    stub.unary(echo_pb.EchoRequest(delay_ms=600_000))
                ),
            )
            protocol.transport.abort()  # fault: the connection is reset
            async with asyncio.timeout(LIVENESS):
                reply = await waiter
            assert reply.message == "B"  # never started on the lost one: retried
            with pytest.raises(rpcfw.RpcError) as info:
                await holder
            assert info.value.status is Status.UNAVAILABLE  # it was running there: lost
    finally:
        await server.stop(grace=0)


async def test_stream_slot_freed_as_the_connection_is_lost_opens_no_dead_stream(
    echo_pb: ModuleType,
) -> None:
    server = await start_server(echo_pb, "s1", max_concurrent_streams=1)
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/echo.v1.Echo/Unary"),
        (":authority", server.address),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
    ]
    try:
        async with rpcfw.Channel(server.address) as channel:
            # a bare stream (a request that never ends) holds the slot
            held, waiter, protocol = await wait_for_a_stream_slot(
                echo_pb, server, channel, lambda _, protocol: protocol.open_stream(headers)
            )
            # fault: in one instant the connection is reset and the slot frees up, so the
            # waiting call wakes after the loss was processed and opens its stream on it
            protocol.transport.abort()
            held.reset()
            held.release()
            async with asyncio.timeout(LIVENESS):
                reply = await waiter
            assert reply.message == "B"  # retried on a fresh connection, not stuck
            (subchannel,) = channel._core.subchannels
            assert subchannel.state is ConnectivityState.READY
            assert subchannel.connection is not None
            assert subchannel.connection.protocol is not protocol
    finally:
        await server.stop(grace=0)
