"""Servers going away under calls in flight, each direction.

Each test has an rpcfw client and a grpcio client in flight at once against the same server (a
grpcio one and an rpcfw one): grpcio's client is the reference for what the rpcfw client reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw

from .calls import KINDS, eventually, grpc_call, rpcfw_call
from .conftest import ConnectGrpc, Peer
from .wiretap import WireTap


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
    echo_pb: ModuleType, address: str, grpc_client: ConnectGrpc, kind: str, delay_ms: int
) -> tuple[rpcfw.Channel, asyncio.Future[Any], asyncio.Future[Any]]:
    """One call of ``kind`` from each client, both in the server's handler when this returns."""
    request = echo_pb.EchoRequest(message="in flight", delay_ms=delay_ms, count=1)
    channel = rpcfw.Channel(address)
    ours = asyncio.ensure_future(outcome(rpcfw_call(echo_pb.EchoStub(channel), kind, request)))
    theirs = asyncio.ensure_future(outcome(grpc_call(grpc_client(address), kind, request)))
    await asyncio.sleep(0.1)
    return channel, ours, theirs


@pytest.mark.parametrize("kind", KINDS)
async def test_server_stop_with_grace_0_fails_calls_in_flight_with_unavailable(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    """rpcfw server: UNAVAILABLE "server is shutting down". grpcio server: GOAWAY (INTERNAL_ERROR,
    "Cancelling all calls"), then trailers UNAVAILABLE for each call — which the rpcfw client
    must read too, not report as a lost connection."""
    async with asyncio.timeout(5):
        channel, ours, theirs = await in_flight(echo_pb, server.address, grpc_client, kind, 3000)
        async with channel:
            start = time.monotonic()
            await server.stop(0)
            rpcfw_result, grpc_result = await ours, await theirs
            assert time.monotonic() - start < 1.0
    assert grpc_result[0] == "UNAVAILABLE"
    assert rpcfw_result == grpc_result


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_severed_mid_call_is_unavailable_and_stops_the_handler(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, wiretap: WireTap, kind: str
) -> None:
    await wiretap.start(server.port)
    async with asyncio.timeout(5):
        channel, ours, theirs = await in_flight(echo_pb, wiretap.address, grpc_client, kind, 3000)
        async with channel:
            wiretap.sever()
            assert await ours == ("UNAVAILABLE", "connection lost during the call")
            assert (await theirs)[0] == "UNAVAILABLE"
        await eventually(lambda: len(server.servicer.cancelled) == 2)


async def test_server_graceful_stop_finishes_calls_in_flight_and_new_calls_fail_fast(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    async with asyncio.timeout(5):
        channel, ours, theirs = await in_flight(echo_pb, server.address, grpc_client, "unary", 300)
        more = [
            asyncio.ensure_future(outcome(rpcfw_call(echo_pb.EchoStub(channel), kind, request)))
            for kind, request in [
                ("bidi", echo_pb.EchoRequest(delay_ms=300)),
                ("server_stream", echo_pb.EchoRequest(delay_ms=100, count=3)),
            ]
        ]
        async with channel:
            await asyncio.sleep(0.05)
            stopping = asyncio.ensure_future(server.stop(grace=2))
            await asyncio.sleep(0.1)  # GOAWAY is out; the listener is closed
            start = time.monotonic()
            new_ours = await outcome(
                echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="new"))
            )
            new_theirs = await outcome(
                grpc_client(server.address).unary(echo_pb.EchoRequest(message="new"))
            )
            assert time.monotonic() - start < 1.0
            assert (new_ours[0], new_theirs[0]) == ("UNAVAILABLE", "UNAVAILABLE")
            assert [await ours, await theirs, *[await call for call in more]] == [("OK", None)] * 4
            await stopping


async def test_server_stop_after_grace_cancels_calls_still_running_with_unavailable(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc
) -> None:
    async with asyncio.timeout(5):
        channel, ours, theirs = await in_flight(echo_pb, server.address, grpc_client, "bidi", 3000)
        async with channel:
            start = time.monotonic()
            await server.stop(grace=0.3)
            rpcfw_result, grpc_result = await ours, await theirs
            assert 0.25 < time.monotonic() - start < 1.5
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
        async with asyncio.timeout(5), rpcfw.Channel(address) as channel:
            stub = echo_pb.EchoStub(channel)
            result = await outcome(stub.unary(echo_pb.EchoRequest(message="x")))
    finally:
        # the channel reconnects after the GOAWAY; let asyncio finish accepting that connection
        # before closing, or its socket leaks when the loop ends (asyncio 3.11 teardown race)
        await asyncio.sleep(0.05)
        server.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()
    assert result == ("UNAVAILABLE", "Cancelling all calls")
