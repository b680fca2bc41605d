"""Server lifecycle: start on port 0, embed in asyncio/anyio, graceful drain, dying mid-call."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import LIVENESS, make_echo_service, wait_until

ROOT = Path(__file__).resolve().parents[2]


async def test_port_zero_binds_a_free_port_and_reports_it(echo_pb: ModuleType) -> None:
    a = rpcfw.Server([make_echo_service(echo_pb, "a")])
    b = rpcfw.Server([make_echo_service(echo_pb, "b")])
    await a.start()
    await b.start()
    assert a.port and b.port and a.port != b.port
    assert a.services == ("echo.v1.Echo",)
    await a.stop()
    await b.stop()


async def test_serving_a_method_twice_is_rejected(echo_pb: ModuleType) -> None:
    with pytest.raises(ValueError, match="served twice"):
        rpcfw.Server([make_echo_service(echo_pb, "a"), make_echo_service(echo_pb, "b")])


async def test_serving_a_non_service_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not an rpcfw service"):
        rpcfw.Server([object()])  # type: ignore[list-item]


async def test_anyio_task_group_cancellation_stops_the_server_cleanly(echo_pb: ModuleType) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve_forever)
        async with rpcfw.Channel(server.address) as channel:
            assert (
                await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="x"))
            ).message == "x"
        tg.cancel_scope.cancel()
    with pytest.raises(rpcfw.RpcError) as info:
        async with rpcfw.Channel(server.address) as channel:
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())
    assert info.value.status is Status.UNAVAILABLE


async def test_graceful_stop_under_load_fails_no_call_in_flight(echo_pb: ModuleType) -> None:
    service = make_echo_service(echo_pb, "s1")
    server = rpcfw.Server([service])
    await server.start()
    async with rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        in_flight = [
            asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(message=str(i), delay_ms=300)))
            for i in range(20)
        ]
        stream = stub.server_stream(echo_pb.EchoRequest(count=5, delay_ms=60))
        first = await anext(stream)
        await wait_until(lambda: service.calls == 21)  # every handler is running
        stopping = asyncio.ensure_future(server.stop(grace=LIVENESS))
        replies = await asyncio.wait_for(asyncio.gather(*in_flight), LIVENESS)  # liveness bound
        rest = [r async for r in stream]
        assert [r.message for r in replies] == [str(i) for i in range(20)]
        assert [first.index] + [r.index for r in rest] == [0, 1, 2, 3, 4]
        await asyncio.wait_for(stopping, LIVENESS)
        assert server.open_connections == 0 and service.cancelled == []
        with pytest.raises(rpcfw.RpcError) as info:  # after the drain: refused, not waiting
            await stub.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
        assert info.value.status is Status.UNAVAILABLE


async def test_calls_outliving_the_grace_period_end_unavailable(echo_pb: ModuleType) -> None:
    service = make_echo_service(echo_pb, "s1")
    server = rpcfw.Server([service])
    await server.start()
    async with rpcfw.Channel(server.address) as channel:
        call = asyncio.ensure_future(  # a handler slower (60 s) than the grace (0.3 s)
            echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(delay_ms=60_000))
        )
        await wait_until(lambda: service.delaying == 1)
        await asyncio.wait_for(server.stop(grace=0.3), LIVENESS)  # liveness bound only
        assert call.done()  # the stop ended it: the grace is over, not the handler
        with pytest.raises(rpcfw.RpcError) as info:
            await call
        assert info.value.status is Status.UNAVAILABLE
        assert service.cancelled == ["/echo.v1.Echo/Unary"]


@pytest.mark.parametrize("steps", range(8))
async def test_stop_while_a_client_connects_never_leaves_it_waiting(
    echo_pb: ModuleType, steps: int
) -> None:
    """The server stops ``steps`` loop steps after a channel's first call started, so that over
    the runs the stop lands at each point of the connection's opening: before the accept,
    between the accept and the connection's transport (asyncio's window where closing the
    listener used to leave the accepted socket open and silent, the client waiting for SETTINGS
    until its connect timeout, its call waiting in pick()), after. The call either completes
    or fails with UNAVAILABLE; it never waits."""
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start()
    async with rpcfw.Channel(server.address) as channel:
        call = asyncio.ensure_future(echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest()))
        for _ in range(steps):
            await asyncio.sleep(0)  # one loop step: places the stop, waits for nothing
        stopping = asyncio.ensure_future(server.stop(grace=LIVENESS))
        try:
            async with asyncio.timeout(LIVENESS):  # liveness bound: the bug waited 20 s
                outcome = "OK" if await asyncio.shield(call) else "?"
        except rpcfw.RpcError as exc:
            outcome = exc.status.name
        await asyncio.wait_for(stopping, LIVENESS)
    assert outcome in ("OK", "UNAVAILABLE")
    assert server.open_connections == 0


async def test_server_process_killed_mid_call_is_unavailable(generated_root: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.echo_server_main",
        str(generated_root),
        "protobuf",
        "p1",
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        port = int(line.split()[1])
        from tests.conftest import load_echo

        mod = load_echo(generated_root, "protobuf")
        async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
            stub = mod.EchoStub(channel)
            assert (await stub.unary(mod.EchoRequest(message="up"))).server_id == "p1"
            async with stub.bidi() as stream:
                await stream.send(mod.EchoRequest(message="first"))
                reply = await stream.recv()  # the call is running in the server's process
                assert reply is not None and reply.message == "first"
                os.kill(proc.pid, signal.SIGKILL)
                with pytest.raises(rpcfw.RpcError) as info:
                    await asyncio.wait_for(stream.recv(), LIVENESS)  # liveness bound only
            assert info.value.status is Status.UNAVAILABLE
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_closing_a_channel_leaves_no_tasks_or_resource_warnings(echo_pb: ModuleType) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start()
    before = {t for t in asyncio.all_tasks()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        channel = rpcfw.Channel(server.address)
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest())
        _ = [r async for r in stub.server_stream(echo_pb.EchoRequest(count=2))]
        await channel.close()
        await wait_until(lambda: server.open_connections == 0)  # the server saw it go too
        del channel, stub
        gc.collect()
    await server.stop(grace=1)
    leaked = {t for t in asyncio.all_tasks() if not t.done()} - before
    assert not leaked, leaked
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


async def test_async_with_server_stops_on_exit(echo_pb: ModuleType) -> None:
    async with rpcfw.Server([make_echo_service(echo_pb, "s1")]) as server:
        await server.start()
        address: Any = server.address
    with pytest.raises(rpcfw.RpcError):
        async with rpcfw.Channel(address) as channel:
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())


async def test_a_connection_closed_before_its_transport_came_is_closed_not_left_silent(
    echo_pb: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop's last step closes every connection; one whose transport asyncio has not made
    yet (accepted, protocol made, connection_made still queued) must still get its socket
    closed when the transport comes, not stay open without a byte (the peer would wait for
    SETTINGS until its connect timeout)."""
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    made = server._protocol_factory

    def closed_at_once() -> Any:
        protocol = made()
        protocol.close()  # what the stop does to a connection it finds in this state
        return protocol

    monkeypatch.setattr(server, "_protocol_factory", closed_at_once)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(LIVENESS):  # liveness bound: the bug waited forever
            assert await reader.read() == b""  # closed: no SETTINGS, no silence
        writer.close()
        await wait_until(lambda: server.open_connections == 0)
    finally:
        await server.stop(grace=0)
