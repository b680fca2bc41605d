"""Call objects (``Channel.unary_call`` / ``server_stream_call`` / ``client_stream_call``, the
generated ``client_stream()`` without requests, ``BidiStream``) and ``capture_call()``: the
server's initial and trailing metadata, the status, the peer and ``cancel()``, for every call
kind and both message backends, against rpcfw's Echo server (``x-*`` request metadata comes
back as initial and trailing metadata; ``abort:``/``details:`` messages end with a status).

Faults injected: the server ends the call with an error status (after its own response
headers, or trailers-only), with a rich status (``grpc-status-details-bin``); the client cancels
a call object mid-call (the handler parked in its delay), before it started, or cancels the task
awaiting the reply; a request over the send limit. The server's handler must see each
cancellation (its delay is interrupted), the client every status as the server sent it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import pytest
from google.protobuf import duration_pb2, wrappers_pb2

import rpcfw
from rpcfw import Metadata, Status
from tests.echo_service import wait_until
from tests.integration.test_anyio_channel import Servers, run
from tests.integration.test_anyio_server import SERVICE, anyio_echo
from tests.status_proto import StatusProto

KINDS = ("unary", "server_stream", "client_stream", "bidi")
PATHS = {
    "unary": f"{SERVICE}/Unary",
    "server_stream": f"{SERVICE}/ServerStream",
    "client_stream": f"{SERVICE}/ClientStream",
    "bidi": f"{SERVICE}/Bidi",
}
TAGS = {"x-tag": "t 1", "x-raw-bin": b"\x00\xff"}
LIVENESS = 5.0  # generous bound: only a hang trips it


def open_call(
    channel: rpcfw.Channel, mod: ModuleType, kind: str, request: Any, **options: Any
) -> Any:
    """The call object of one ``kind`` call (not started yet)."""
    if kind == "unary":
        return channel.unary_call(mod.ECHO_UNARY, request, **options)
    if kind == "server_stream":
        return channel.server_stream_call(mod.ECHO_SERVER_STREAM, request, **options)
    if kind == "client_stream":
        return mod.EchoStub(channel).client_stream(**options)
    return mod.EchoStub(channel).bidi(**options)


async def finish(call: Any, kind: str, request: Any) -> list[Any]:
    """Run a call object to its end (the request once for the streaming-request kinds)."""
    if kind == "unary":
        return [await call]
    if kind == "server_stream":
        return [reply async for reply in call]
    await call.send(request)
    if kind == "client_stream":
        return [await call]
    await call.done_writing()
    try:
        return [reply async for reply in call]
    finally:
        await call.aclose()


def start_reading(call: Any, kind: str, request: Any) -> asyncio.Future[Any]:
    """A task waiting for the call's (first) reply."""

    async def read() -> Any:
        if kind == "unary":
            return await call
        if kind == "server_stream":
            return await call.recv()
        await call.send(request)
        return await (call.response() if kind == "client_stream" else call.recv())

    return asyncio.ensure_future(read())


@pytest.fixture
async def parked_server(echo_pb: ModuleType) -> AsyncIterator[tuple[rpcfw.Server, Any]]:
    """An Echo server whose ``delay_ms`` waits set ``service.sleeping`` as they start."""
    service = anyio_echo(echo_pb)
    async with rpcfw.Server([service]) as server:
        await server.start("127.0.0.1", 0)
        yield server, service


# -- OK calls ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_each_call_object_reports_metadata_status_and_peer_after_an_ok_call(
    echo: ModuleType, echo_server: rpcfw.Server, echo_channel: rpcfw.Channel, kind: str
) -> None:
    request = echo.EchoRequest(message="m", count=2)
    call = open_call(echo_channel, echo, kind, request, metadata=TAGS)
    assert (call.status, call.peer, call.initial_metadata, call.trailing_metadata) == (None,) * 4
    replies = await finish(call, kind, request)
    assert [reply.message for reply in replies] == ["m"] * (2 if kind == "server_stream" else 1)
    assert call.status is Status.OK and call.error is None
    assert call.peer == echo_server.address
    assert call.initial_metadata == Metadata(list(TAGS.items()))
    assert call.trailing_metadata == Metadata(list(TAGS.items()))
    assert await call.wait_initial_metadata() == Metadata(list(TAGS.items()))
    assert call.cancel() is False  # already over: the status stays
    assert call.status is Status.OK


async def test_a_unary_call_awaited_again_gives_the_same_reply(
    echo_pb: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    call = echo_channel.unary_call(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(message="once"))
    assert (await call.wait_initial_metadata()) == Metadata()  # starts the call
    reply = await call
    assert (await call) is reply and (await call.response()) is reply


async def test_tasks_reading_one_call_object_at_once_take_turns(
    echo_pb: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    """Two tasks await one unary call; one task waits for a bidi call's headers while another
    reads its replies (the stream has one reader: reads must take turns, never hang)."""
    call = echo_channel.unary_call(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(message="u"))
    first, second = await asyncio.gather(call.response(), call.response())
    assert first is second and first.message == "u"

    async with (
        asyncio.timeout(LIVENESS),
        echo_pb.EchoStub(echo_channel).bidi(metadata=TAGS) as stream,
    ):
        headers = asyncio.ensure_future(stream.wait_initial_metadata())
        reader = asyncio.ensure_future(stream.recv())
        await stream.send(echo_pb.EchoRequest(message="b"))
        assert (await headers).get("x-tag") == "t 1"
        assert (await reader).message == "b"
        await stream.done_writing()
        assert await stream.recv() is None


async def test_client_stream_call_object_sends_half_closes_and_gets_the_reply(
    echo: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    async with echo.EchoStub(echo_channel).client_stream(timeout=LIVENESS) as call:
        for word in "abc":
            await call.send(echo.EchoRequest(message=word))
        await call.done_writing()
        reply = await call.response()
        assert (reply.message, reply.index) == ("a,b,c", 3)
        assert (await call) is reply
        with pytest.raises(rpcfw.RpcError) as info:  # a usage error: the call stays OK
            await call.send(echo.EchoRequest(message="late"))
        assert info.value.status is Status.INTERNAL
    assert call.status is Status.OK


async def test_client_stream_reply_half_closes_when_done_writing_was_not_called(
    echo_pb: ModuleType, echo_channel: rpcfw.Channel
) -> None:
    call = echo_pb.EchoStub(echo_channel).client_stream(metadata=TAGS)
    await call.send(echo_pb.EchoRequest(message="only"))
    reply = await call
    # the handler answers only once its request stream has ended: the half-close was sent, after
    # exactly the one message
    assert (reply.message, reply.index) == ("only", 1)
    assert call.trailing_metadata == Metadata(list(TAGS.items()))


async def test_client_stream_message_over_the_send_limit_raises_and_the_call_goes_on(
    echo_pb: ModuleType, echo_server: rpcfw.Server
) -> None:
    async with rpcfw.Channel(echo_server.address, max_send_message_length=64) as channel:
        call = echo_pb.EchoStub(channel).client_stream()
        with pytest.raises(rpcfw.MessageTooLargeError):
            await call.send(echo_pb.EchoRequest(payload=b"x" * 100))
        assert call.status is None
        await call.send(echo_pb.EchoRequest(message="small"))
        assert (await call).message == "small"


async def test_bidi_stream_has_a_peer_and_waits_for_initial_metadata(
    echo_pb: ModuleType, echo_server: rpcfw.Server, echo_channel: rpcfw.Channel
) -> None:
    async with echo_pb.EchoStub(echo_channel).bidi(metadata=TAGS) as stream:
        assert stream.peer == echo_server.address  # opened by ``async with``
        await stream.send(echo_pb.EchoRequest(message="m"))
        assert (await stream.wait_initial_metadata()).get("x-tag") == "t 1"
        assert (await stream.recv()).message == "m"
        await stream.done_writing()
        assert await stream.recv() is None
    assert stream.trailing_metadata == Metadata(list(TAGS.items()))  # read to the trailers


# -- error statuses ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_error_status_after_response_headers_carries_both_metadata(
    echo: ModuleType, echo_channel: rpcfw.Channel, kind: str
) -> None:
    """Fault: the handler sets initial metadata, then aborts: headers, then the status."""
    request = echo.EchoRequest(message="abort:5:no such thing", count=1)
    call = open_call(echo_channel, echo, kind, request, metadata=TAGS)
    with pytest.raises(rpcfw.RpcError) as info:
        await finish(call, kind, request)
    error = info.value
    assert (error.code, error.status, error.message) == (Status.NOT_FOUND,) * 2 + ("no such thing",)
    assert error.initial_metadata == Metadata(list(TAGS.items()))
    assert error.trailing_metadata == Metadata(list(TAGS.items()))
    assert error.details is None
    assert call.status is Status.NOT_FOUND and call.error is error
    assert call.initial_metadata == call.trailing_metadata == Metadata(list(TAGS.items()))
    assert call.cancel() is False
    if kind in ("unary", "client_stream"):  # awaiting again: the same outcome
        with pytest.raises(rpcfw.RpcError) as again:
            await call
        assert again.value is error


@pytest.mark.parametrize("kind", KINDS)
async def test_trailers_only_error_has_empty_initial_metadata(
    echo: ModuleType, echo_channel: rpcfw.Channel, kind: str
) -> None:
    """Fault: the handler aborts before anything was sent: one trailers-only answer."""
    request = echo.EchoRequest(message="abort:9:not now", count=1)
    call = open_call(echo_channel, echo, kind, request)
    with pytest.raises(rpcfw.RpcError) as info:
        await finish(call, kind, request)
    assert info.value.status is Status.FAILED_PRECONDITION
    assert info.value.initial_metadata == Metadata()  # received, and empty
    assert info.value.trailing_metadata == Metadata()
    assert call.status is Status.FAILED_PRECONDITION


@pytest.mark.parametrize("kind", KINDS)
async def test_plain_stub_forms_raise_errors_with_initial_metadata(
    echo: ModuleType, echo_channel: rpcfw.Channel, kind: str
) -> None:
    from tests.interop.calls import rpcfw_call

    request = echo.EchoRequest(message="abort:7:denied", count=1)
    with pytest.raises(rpcfw.RpcError) as info:
        await rpcfw_call(echo.EchoStub(echo_channel), kind, request, metadata=TAGS)
    assert info.value.code is Status.PERMISSION_DENIED
    assert info.value.initial_metadata == info.value.trailing_metadata
    assert info.value.initial_metadata == Metadata(list(TAGS.items()))


@pytest.mark.parametrize("kind", KINDS)
async def test_rich_status_from_context_abort_reaches_the_client_as_details(
    echo: ModuleType, echo_channel: rpcfw.Channel, kind: str
) -> None:
    """Fault: the handler aborts with details (grpc-status-details-bin)."""
    request = echo.EchoRequest(message="details:3:field x is bad", count=1)
    call = open_call(echo_channel, echo, kind, request)
    with pytest.raises(rpcfw.RpcError) as info:
        await finish(call, kind, request)
    details = info.value.details
    assert info.value.code is Status.INVALID_ARGUMENT
    assert details is not None and (details.code, details.message) == (3, "field x is bad")
    assert details.unpack(duration_pb2.Duration) == duration_pb2.Duration(seconds=7)
    assert details.unpack(wrappers_pb2.StringValue).value == "field x is bad"
    assert details.unpack(wrappers_pb2.Int32Value) is None
    decoded = StatusProto.FromString(details.SerializeToString())  # protobuf's own parser
    assert (decoded.code, decoded.message, len(decoded.details)) == (3, "field x is bad", 2)
    assert "grpc-status-details-bin" not in info.value.trailing_metadata.to_dict()


# -- cancel() ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_ends_each_call_object_cancelled_and_cancels_the_server_handler(
    echo_pb: ModuleType, parked_server: tuple[rpcfw.Server, Any], kind: str
) -> None:
    """Fault: the client cancels while the handler is parked in a 60 s delay."""
    server, service = parked_server
    request = echo_pb.EchoRequest(message="m", count=1, delay_ms=60_000)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        call = open_call(channel, echo_pb, kind, request)
        reader = start_reading(call, kind, request)
        await service.sleeping.wait()
        assert call.cancel() is True
        with pytest.raises(rpcfw.RpcError) as info:
            await reader
        assert info.value.status is Status.CANCELLED
        assert call.status is Status.CANCELLED and call.error is info.value
        assert call.cancel() is False
        with pytest.raises(rpcfw.RpcError) as later:  # every later use says so too
            await call.wait_initial_metadata()
        assert later.value is info.value
        await wait_until(lambda: service.cancelled == [PATHS[kind]])
        if kind == "bidi":
            await call.aclose()
        reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="next"))
        assert reply.message == "next"  # the connection serves on


async def test_cancel_before_the_call_started_sends_nothing(
    echo_pb: ModuleType, parked_server: tuple[rpcfw.Server, Any]
) -> None:
    server, service = parked_server
    async with rpcfw.Channel(server.address) as channel:
        call = channel.unary_call(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(message="never"))
        assert call.cancel() is True
        with pytest.raises(rpcfw.RpcError) as info:
            await call
        assert info.value.status is Status.CANCELLED and call.peer is None
        await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="after"))
    assert service.calls == 1  # only the second call reached the server


async def test_a_call_that_could_not_start_reports_unavailable_and_cannot_be_cancelled(
    echo_pb: ModuleType,
) -> None:
    """Fault: nothing listens at the target (fail fast: UNAVAILABLE)."""
    async with rpcfw.Server([]) as idle:
        await idle.start("127.0.0.1", 0)
        address = idle.address
    async with rpcfw.Channel(address) as channel:
        call = channel.server_stream_call(echo_pb.ECHO_SERVER_STREAM, echo_pb.EchoRequest())
        with pytest.raises(rpcfw.RpcError) as info:
            await call.recv()
        assert info.value.status is Status.UNAVAILABLE and call.status is Status.UNAVAILABLE
        assert info.value.initial_metadata is None and call.peer is None
        assert call.cancel() is False and call.status is Status.UNAVAILABLE


async def test_cancelling_the_task_awaiting_a_unary_call_cancels_the_call(
    echo_pb: ModuleType, parked_server: tuple[rpcfw.Server, Any]
) -> None:
    """Fault: the caller's task is cancelled while it awaits the reply (as ``wait_for``
    does): the call is cancelled with it, as with ``await stub.unary()``."""
    server, service = parked_server
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        call = channel.unary_call(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(delay_ms=60_000))

        async def caller() -> Any:
            return await call

        task = asyncio.ensure_future(caller())
        await service.sleeping.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert call.status is Status.CANCELLED
        await wait_until(lambda: service.cancelled == [PATHS["unary"]])


async def test_leaving_a_server_stream_call_block_early_cancels_it(
    echo_pb: ModuleType, parked_server: tuple[rpcfw.Server, Any]
) -> None:
    server, service = parked_server
    request = echo_pb.EchoRequest(message="m", count=3, delay_ms=100)
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        async with channel.server_stream_call(echo_pb.ECHO_SERVER_STREAM, request) as call:
            async for reply in call:
                assert reply.index == 0
                break  # the handler is now in the delay before its second reply
        assert call.status is Status.CANCELLED
        await wait_until(lambda: service.cancelled == [PATHS["server_stream"]])


# -- capture_call() ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_capture_call_gives_a_plain_stub_calls_state(
    echo: ModuleType, echo_server: rpcfw.Server, echo_channel: rpcfw.Channel, kind: str
) -> None:
    from tests.interop.calls import rpcfw_call

    stub = echo.EchoStub(echo_channel)
    with rpcfw.capture_call() as call:
        assert (call.status, call.peer, call.cancel()) == (None, None, False)
        await rpcfw_call(stub, kind, echo.EchoRequest(message="m", count=1), metadata=TAGS)
    assert call.status is Status.OK and call.error is None
    assert call.peer == echo_server.address
    assert call.initial_metadata == call.trailing_metadata == Metadata(list(TAGS.items()))

    with rpcfw.capture_call() as failed, pytest.raises(rpcfw.RpcError) as info:
        await rpcfw_call(stub, kind, echo.EchoRequest(message="abort:5:gone", count=1))
    assert failed.status is Status.NOT_FOUND and failed.error is info.value
    await stub.unary(echo.EchoRequest(message="outside"))
    assert failed.status is Status.NOT_FOUND  # a call after the block is not captured


async def test_capture_call_cancel_from_another_task_ends_the_plain_call(
    echo_pb: ModuleType, parked_server: tuple[rpcfw.Server, Any]
) -> None:
    server, service = parked_server
    captured: list[rpcfw.CapturedCall] = []
    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:

        async def caller() -> Any:
            with rpcfw.capture_call() as call:
                captured.append(call)
                return await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(delay_ms=60_000))

        task = asyncio.ensure_future(caller())
        await service.sleeping.wait()
        assert captured[0].cancel() is True
        with pytest.raises(rpcfw.RpcError) as info:
            await task
        assert info.value.status is Status.CANCELLED
        assert captured[0].status is Status.CANCELLED
        await wait_until(lambda: service.cancelled == [PATHS["unary"]])


# -- on trio too -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_unary_call_object_metadata_and_cancel_on_both_anyio_backends(
    echo_pb: ModuleType, backend: str
) -> None:
    async def body(servers: Servers) -> tuple[Any, ...]:
        await servers.add()
        service = servers.services[0]
        async with rpcfw.Channel(servers.target()) as channel:
            ok = channel.unary_call(
                echo_pb.ECHO_UNARY, echo_pb.EchoRequest(message="m"), metadata=TAGS
            )
            await ok
            slow = channel.unary_call(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(delay_ms=60_000))
            errors: list[rpcfw.RpcError] = []

            async def read() -> None:
                try:
                    await slow
                except rpcfw.RpcError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(read)
                await service.sleeping.wait()
                slow.cancel()
            await wait_until(lambda: bool(service.cancelled))
            return ok.status, ok.trailing_metadata.get("x-tag"), errors[0].status, slow.status

    assert run(backend, body, echo_pb) == (Status.OK, "t 1", Status.CANCELLED, Status.CANCELLED)
