"""rpcfw's call objects and ``RpcError`` against a grpcio server and an rpcfw server, and next
to grpcio's client: the same metadata, status, message and rich status (``grpc-status-details-
bin``) as grpcio reports them, and ``cancel()`` as RST_STREAM CANCEL that ends the server's
handler.

Faults injected: the server ends calls with an error after its response headers, and with a
rich status (a grpcio server sets ``grpc-status-details-bin`` as trailing metadata, as
grpcio-status does); the client cancels a call object while the handler is parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, wrappers_pb2
from h2.errors import ErrorCodes

import rpcfw
from rpcfw import Metadata, Status

from ..integration.test_call_objects import KINDS, TAGS, finish, open_call, start_reading
from ..status_proto import StatusProto
from .calls import PATHS, eventually, grpc_call
from .conftest import ConnectGrpc, Peer
from .grpc_peer import SERVICE
from .wiretap import RST_STREAM, WireTap

LIVENESS = 5.0  # generous bound: only a hang trips it
DETAILS = "grpc-status-details-bin"


@pytest.mark.parametrize("kind", KINDS)
async def test_call_objects_report_metadata_status_and_peer_from_either_server(
    echo_pb: ModuleType, server: Peer, kind: str
) -> None:
    request = echo_pb.EchoRequest(message="m", count=1)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        call = open_call(channel, echo_pb, kind, request, metadata=TAGS)
        assert [r.server_id for r in await finish(call, kind, request)] == [server.kind]
    assert call.status is Status.OK and call.peer == server.address
    assert call.initial_metadata == Metadata(list(TAGS.items()))
    assert call.trailing_metadata == Metadata(list(TAGS.items()))


@pytest.mark.parametrize("kind", KINDS)
async def test_rpc_error_matches_grpcios_view_of_the_same_failure(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    """Fault: the handler sends its initial metadata, then aborts NOT_FOUND. rpcfw's
    ``e.code`` / ``e.message`` / ``e.initial_metadata`` / ``e.trailing_metadata`` are what
    grpcio's ``e.code()`` / ``e.details()`` / ``e.initial_metadata()`` /
    ``e.trailing_metadata()`` say (the README's mapping table)."""
    request = echo_pb.EchoRequest(message="abort:5:no such thing", count=1)
    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await grpc_call(grpc_client(server.address), kind, request, metadata=tuple(TAGS.items()))
    async with rpcfw.Channel(server.address) as channel:
        call = open_call(channel, echo_pb, kind, request, metadata=TAGS)
        with pytest.raises(rpcfw.RpcError) as ours:
            await finish(call, kind, request)
    grpc_error, error = theirs.value, ours.value
    assert error.code.value == grpc_error.code().value[0] == Status.NOT_FOUND.value
    assert error.message == grpc_error.details() == "no such thing"
    if not (server.kind == "rpcfw" and kind == "server_stream"):
        # (grpcio's server-streaming client reports no initial metadata when the headers
        # arrive in the same read as the trailers, as an rpcfw server's abort sends them)
        assert tuple(error.initial_metadata or ()) == tuple(grpc_error.initial_metadata())
    assert tuple(error.trailing_metadata or ()) == tuple(grpc_error.trailing_metadata())
    assert error.initial_metadata == Metadata(list(TAGS.items()))
    assert call.status is Status.NOT_FOUND
    assert call.initial_metadata == call.trailing_metadata == Metadata(list(TAGS.items()))


@pytest.mark.parametrize("kind", KINDS)
async def test_rich_status_details_from_either_server(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, kind: str
) -> None:
    """Fault: the handler aborts INVALID_ARGUMENT with a google.rpc.Status (a Duration and a
    StringValue). rpcfw decodes it into ``e.details``; grpcio's client finds the same bytes in
    its trailing metadata (so an rpcfw server's details reach grpcio clients too)."""
    request = echo_pb.EchoRequest(message="details:3:field x is bad", count=1)
    async with rpcfw.Channel(server.address) as channel:
        call = open_call(channel, echo_pb, kind, request)
        with pytest.raises(rpcfw.RpcError) as info:
            await finish(call, kind, request)
    details = info.value.details
    assert info.value.code is Status.INVALID_ARGUMENT and info.value.message == "field x is bad"
    assert details is not None and (details.code, details.message) == (3, "field x is bad")
    assert details.unpack(duration_pb2.Duration) == duration_pb2.Duration(seconds=7)
    assert details.unpack(wrappers_pb2.StringValue).value == "field x is bad"

    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await grpc_call(grpc_client(server.address), kind, request)
    raw = dict(theirs.value.trailing_metadata())[DETAILS]
    assert raw == details.SerializeToString()
    decoded = StatusProto.FromString(raw)
    assert (decoded.code, decoded.message) == (3, "field x is bad")
    assert [d.type_url.rsplit("/", 1)[1] for d in decoded.details] == [
        "google.protobuf.Duration",
        "google.protobuf.StringValue",
    ]


# -- cancel() ----------------------------------------------------------------------------------
class Parking:
    """What both parking servers share: ``parked`` is set when a handler starts to wait (after
    its first request), ``cancelled`` lists the methods whose wait was cancelled."""

    def __init__(self) -> None:
        self.parked = asyncio.Event()
        self.cancelled: list[str] = []

    async def park(self, path: str) -> None:
        self.parked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(path)
            raise


def grpc_parking_handler(parking: Parking, mod: ModuleType) -> grpc.GenericRpcHandler:
    async def unary(request: Any, context: Any) -> Any:
        await parking.park(PATHS["unary"])

    async def server_stream(request: Any, context: Any) -> AsyncIterator[Any]:
        await parking.park(PATHS["server_stream"])
        yield mod.EchoResponse()

    async def client_stream(requests: AsyncIterator[Any], context: Any) -> Any:
        async for _ in requests:
            await parking.park(PATHS["client_stream"])

    async def bidi(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for _ in requests:
            await parking.park(PATHS["bidi"])
            yield mod.EchoResponse()

    codec = {
        "request_deserializer": mod.EchoRequest.FromString,
        "response_serializer": mod.EchoResponse.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **codec),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **codec),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **codec),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **codec),
        },
    )


def rpcfw_parking_service(parking: Parking, mod: ModuleType) -> Any:
    class ParkingEcho(mod.EchoBase):  # type: ignore[misc,name-defined]
        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            await parking.park(context.method)

        async def server_stream(self, request: Any, context: rpcfw.CallContext) -> Any:
            await parking.park(context.method)
            yield mod.EchoResponse()

        async def client_stream(self, requests: Any, context: rpcfw.CallContext) -> Any:
            async for _ in requests:
                await parking.park(context.method)

        async def bidi(self, requests: Any, context: rpcfw.CallContext) -> Any:
            async for _ in requests:
                await parking.park(context.method)
                yield mod.EchoResponse()

    return ParkingEcho()


@pytest.fixture(params=["grpcio", "rpcfw"], ids=["grpcio-server", "rpcfw-server"])
async def parking_server(
    request: pytest.FixtureRequest, echo_pb: ModuleType
) -> AsyncIterator[tuple[int, Parking]]:
    """(port, parking) of a server of each kind whose handlers park until cancelled."""
    parking = Parking()
    if request.param == "grpcio":
        server: Any = grpc.aio.server()
        server.add_generic_rpc_handlers([grpc_parking_handler(parking, echo_pb)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        yield port, parking
        await server.stop(0)
    else:
        async with rpcfw.Server([rpcfw_parking_service(parking, echo_pb)]) as ours:
            await ours.start("127.0.0.1", 0)
            yield ours.port, parking


@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_sends_rst_cancel_and_ends_the_handler_on_either_server(
    echo_pb: ModuleType, parking_server: tuple[int, Parking], wiretap: WireTap, kind: str
) -> None:
    """Fault: ``call.cancel()`` while the server's handler is parked."""
    port, parking = parking_server
    await wiretap.start(port)
    request = echo_pb.EchoRequest(message="m")
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(wiretap.address) as channel:
        call = open_call(channel, echo_pb, kind, request)
        reader = start_reading(call, kind, request)
        await parking.parked.wait()
        assert call.cancel() is True
        with pytest.raises(rpcfw.RpcError) as info:
            await reader
        assert info.value.status is Status.CANCELLED and call.status is Status.CANCELLED
        await eventually(lambda: parking.cancelled == [PATHS[kind]], within=LIVENESS)
        resets = [f.error_code for f in wiretap.sent("client", RST_STREAM)]
        assert resets == [ErrorCodes.CANCEL]
        await call.aclose()  # nothing more goes out
    assert [f.error_code for f in wiretap.sent("client", RST_STREAM)] == [ErrorCodes.CANCEL]
