"""Servers going away under calls in flight, each direction.

Each test has an rpcfw client and a grpcio client in flight at once against the same server (a
grpcio one and an rpcfw one): grpcio's client is the reference for what the rpcfw client reports.

No test measures time: "in flight" means both handlers are in their delay (counted by the
servicer), what ends a call is told by its status and by the handlers that were cancelled, and
``LIVENESS`` only bounds waits so that a hang fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw import ConnectivityState

from ..echo_service import LIVENESS
from .calls import KINDS, eventually, grpc_call, rpcfw_call
from .conftest import ConnectGrpc, Peer
from .wiretap import WireTap

#: a handler's delay that only the server's stop (or a lost connection) can end: no test waits it
STOPPED_ONLY = 600_000


async def outcome(coro: Any) -> tuple[str, str | None]:
    """(status name, message) of a call, from either client; ("OK", None) on success."""
    try:
        await coro
    except rpcfw.RpcError as exc:
        return exc.status.name, exc.message
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details()
    return "OK", None


async def in_flight(
    echo_pb: ModuleType,
    server: Peer,
    address: str,
    grpc_client: ConnectGrpc,
    kind: str,
    delay_ms: int,
) -> tuple[rpcfw.Channel, asyncio.Future[Any], asyncio.Future[Any]]:
    """One call of ``kind`` from each client, both in the server's handler (in its delay) when
    this returns: ``server`` is the Peer behind ``address``."""
    request = echo_pb.EchoRequest(message="in flight", delay_ms=delay_ms, count=1)
    channel = rpcfw.Channel(address)
    ours = asyncio.ensure_future(outcome(rpcfw_call(echo_pb.EchoStub(channel), kind, request)))
    theirs = asyncio.ensure_future(outcome(grpc_call(grpc_client(address), kind, request)))
    await eventually(lambda: server.servicer.delaying == 2)
    return channel, ours, theirs


def refuses_connections(port: int) -> bool:
    """Nothing accepts connections on ``port`` any more (the listener is closed)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("kind", KINDS)
async def test_server_stop_with_grace_0_fails_calls_in_flight_with_unavailable(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    """rpcfw server: UNAVAILABLE "server is shutting down". grpcio server: GOAWAY (INTERNAL_ERROR,
    "Cancelling all calls"), then trailers UNAVAILABLE for each call — which the rpcfw client
    must read too, not report as a lost connection. The handlers (which would run for minutes)
    are cancelled: the stop ended the calls."""
    async with asyncio.timeout(LIVENESS):  # liveness bound only
        channel, ours, theirs = await in_flight(
            echo_pb, server, server.address, grpc_client, kind, STOPPED_ONLY
        )
        async with channel:
            await server.stop(0)
            rpcfw_result, grpc_result = await ours, await theirs
        await eventually(lambda: len(server.servicer.cancelled) == 2)
    assert grpc_result[0] == "UNAVAILABLE"
    assert rpcfw_result == grpc_result


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_severed_mid_call_is_unavailable_and_stops_the_handler(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, wiretap: WireTap, kind: str
) -> None:
    await wiretap.start(server.port)
    async with asyncio.timeout(LIVENESS):  # liveness bound only
        channel, ours, theirs = await in_flight(
            echo_pb, server, wiretap.address, grpc_client, kind, STOPPED_ONLY
        )
        async with channel:
            wiretap.sever()
            assert await ours == ("UNAVAILABLE", "connection lost during the call")
            assert (await theirs)[0] == "UNAVAILABLE"
        await eventually(lambda: len(server.servicer.cancelled) == 2)


async def test_server_graceful_stop_finishes_calls_in_flight_and_new_calls_fail_fast(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    """Calls the server has when the stop begins finish OK (each handler's short delay is the
    work it finishes; the grace is far longer); a call started once the rpcfw channel saw the
    GOAWAY and the listener is closed fails with UNAVAILABLE without waiting: its deadline
    (a liveness bound) would say DEADLINE_EXCEEDED."""
    async with asyncio.timeout(LIVENESS):  # liveness bound only
        channel, ours, theirs = await in_flight(
            echo_pb, server, server.address, grpc_client, "unary", 300
        )
        more = [
            asyncio.ensure_future(outcome(rpcfw_call(echo_pb.EchoStub(channel), kind, request)))
            for kind, request in [
                ("bidi", echo_pb.EchoRequest(delay_ms=300)),
                ("server_stream", echo_pb.EchoRequest(delay_ms=100, count=3)),
            ]
        ]
        async with channel:
            await eventually(lambda: server.servicer.calls == 4)  # the server has all four
            stopping = asyncio.ensure_future(server.stop(grace=LIVENESS))
            # the GOAWAY reached the channel, and nothing accepts connections any more
            await eventually(lambda: channel.get_state() is not ConnectivityState.READY)
            await eventually(lambda: refuses_connections(server.port))
            new_ours = await outcome(
                echo_pb.EchoStub(channel).unary(
                    echo_pb.EchoRequest(message="new"), timeout=LIVENESS
                )
            )
            new_theirs = await outcome(
                grpc_client(server.address).unary(
                    echo_pb.EchoRequest(message="new"), timeout=LIVENESS
                )
            )
            assert (new_ours[0], new_theirs[0]) == ("UNAVAILABLE", "UNAVAILABLE")
            assert [await ours, await theirs, *[await call for call in more]] == [("OK", None)] * 4
            await stopping
    assert server.servicer.cancelled == []


async def test_server_stop_after_grace_cancels_calls_still_running_with_unavailable(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    """Handlers that would run for minutes, a grace of 0.3 s: the calls are still running once
    the drain began (the channel saw the GOAWAY), then the stop ends them with UNAVAILABLE and
    cancels both handlers."""
    async with asyncio.timeout(LIVENESS):  # liveness bound only
        channel, ours, theirs = await in_flight(
            echo_pb, server, server.address, grpc_client, "bidi", STOPPED_ONLY
        )
        async with channel:
            stopping = asyncio.ensure_future(server.stop(grace=0.3))
            await eventually(lambda: channel.get_state() is not ConnectivityState.READY)
            assert not ours.done() and not theirs.done()  # draining: the calls still run
            await stopping
            rpcfw_result, grpc_result = await ours, await theirs
        await eventually(lambda: len(server.servicer.cancelled) == 2)
    assert grpc_result[0] == "UNAVAILABLE"
    assert rpcfw_result == grpc_result


async def test_rpcfw_client_reads_the_status_sent_after_a_goaway_with_an_error_code(
    echo_pb: ModuleType,
) -> None:
    """grpcio's stop(grace=0), replayed deterministically by a scripted HTTP/2 server (grpcio
    itself sends NO_ERROR or INTERNAL_ERROR here depending on timing): GOAWAY(INTERNAL_ERROR)
    naming the call's stream as the last one, then that call's trailers-only UNAVAILABLE."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.errors import ErrorCodes
    from h2.events import StreamEnded
    from hyperframe.frame import GoAwayFrame

    status = [("grpc-status", "14"), ("grpc-message", "Cancelling all calls")]
    handlers: list[asyncio.Task[Any]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        conn = H2Connection(H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, StreamEnded):
                        last = event.stream_id
                        goaway = GoAwayFrame(
                            0, last_stream_id=last, error_code=ErrorCodes.INTERNAL_ERROR
                        )
                        writer.write(goaway.serialize())
                        headers = [
                            (":status", "200"),
                            ("content-type", "application/grpc"),
                            *status,
                        ]
                        conn.send_headers(event.stream_id, headers, end_stream=True)
                writer.write(conn.data_to_send())
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()  # else the loop may end before the socket closes

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with asyncio.timeout(LIVENESS), rpcfw.Channel(address) as channel:
            stub = echo_pb.EchoStub(channel)
            result = await outcome(stub.unary(echo_pb.EchoRequest(message="x")))
    finally:
        server.close()
        async with asyncio.timeout(LIVENESS):  # liveness bound only
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
    assert result == ("UNAVAILABLE", "Cancelling all calls")
