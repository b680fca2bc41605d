"""Faults a call can meet, each named: errors, deadlines, cancellation, bad input, size limits."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import LIVENESS, make_echo_service, wait_until
from tests.http2.raw_peer import raw_peer


@pytest.fixture
async def served(echo_pb: ModuleType) -> AsyncIterator[tuple[Any, rpcfw.Channel, Any]]:
    service = make_echo_service(echo_pb, "s1")
    server = rpcfw.Server([service], max_receive_message_length=1024 * 1024)
    await server.start()
    async with rpcfw.Channel(server.address, max_receive_message_length=2 * 1024 * 1024) as channel:
        yield echo_pb.EchoStub(channel), channel, service
    await server.stop(grace=1)


async def test_abort_status_and_non_ascii_message_reach_the_client(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, _ = served
    with pytest.raises(rpcfw.RpcError) as info:
        await stub.unary(echo_pb.EchoRequest(message="abort:5:n\u00f6t  here \U0001f389"))
    assert info.value.status is Status.NOT_FOUND
    assert info.value.message == "n\u00f6t  here \U0001f389"


async def test_handler_exception_becomes_unknown_without_leaking_a_traceback(
    echo_pb: ModuleType, served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The client gets UNKNOWN with the exception's type and text, nothing more: no frame of the
    traceback in the status message, the trailers or the response headers (checked on the wire
    with a raw HTTP/2 peer, grpc-message percent-decoded). The traceback does exist: the server
    logs it, so the check is not vacuous."""
    stub, channel, _ = served
    caplog.set_level(logging.ERROR, logger="rpcfw.server")
    with pytest.raises(rpcfw.RpcError) as info:
        await stub.unary(echo_pb.EchoRequest(message="raise"))
    assert info.value.status is Status.UNKNOWN
    assert info.value.message == "unexpected ValueError: boom"
    assert info.value.details is None

    logged = [r.exc_info for r in caplog.records if r.exc_info]
    assert logged, "the server logged no traceback: the checks below would prove nothing"
    frames = traceback.extract_tb(logged[-1][2])
    assert frames[-1].name == "_prepare" and frames[-1].filename.endswith("echo_service.py")
    # what a leaked traceback would show: its header, its frames' files, lines and functions
    leaks = {"Traceback", 'File "', "line ", *(Path(f.filename).name for f in frames)}
    leaks |= {f.name for f in frames}

    async with raw_peer(int(channel.target.rsplit(":", 1)[1])) as peer:
        log = await peer.unary(echo_pb.EchoRequest(message="raise").SerializeToString())
    assert log.grpc_status is not None and Status(log.grpc_status) is Status.UNKNOWN
    assert not log.messages
    on_the_wire = [unquote(text) for block in log.blocks for field in block for text in field]
    assert "unexpected ValueError: boom" in on_the_wire  # grpc-message, as the client read it
    seen = [
        *on_the_wire,
        *(str(entry) for entry in info.value.trailing_metadata or ()),
        *(str(entry) for entry in info.value.initial_metadata or ()),
    ]
    assert [(text, leak) for text in seen for leak in leaks if leak in text] == []


@pytest.mark.parametrize("fault", ["abort", "raise"])
async def test_error_in_mid_server_stream_arrives_after_the_sent_replies(
    echo_pb: ModuleType, fault: str
) -> None:
    """The handler sends two replies, then fails at once (abort, or an exception): the client
    reads both replies, in order, and only then the error status; nothing is dropped when the
    trailers follow the replies closely (often in the same read)."""

    class TwoRepliesThenFail(type(make_echo_service(echo_pb, "s1"))):  # type: ignore[misc]
        async def server_stream(self, request: Any, context: rpcfw.CallContext) -> Any:
            for index in range(2):
                yield echo_pb.EchoResponse(message=f"reply {index}", index=index)
            if fault == "abort":
                context.abort(Status.FAILED_PRECONDITION, "stop")
            raise ValueError("stop")

    server = rpcfw.Server([TwoRepliesThenFail()])
    await server.start()
    try:
        async with rpcfw.Channel(server.address) as channel:
            events: list[str] = []
            with pytest.raises(rpcfw.RpcError) as info:
                async for reply in echo_pb.EchoStub(channel).server_stream(
                    echo_pb.EchoRequest(count=5)
                ):
                    events.append(reply.message)
            events.append(f"error {info.value.status.name}")
    finally:
        await server.stop(grace=1)
    expected = "FAILED_PRECONDITION" if fault == "abort" else "UNKNOWN"
    assert events == ["reply 0", "reply 1", f"error {expected}"]
    assert info.value.message == ("stop" if fault == "abort" else "unexpected ValueError: stop")


async def test_expired_deadline_is_deadline_exceeded_and_cancels_the_handler(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    with pytest.raises(rpcfw.RpcError) as info:
        # the handler's delay (60 s) is the slowness under test: only the deadline ends the call
        await stub.unary(echo_pb.EchoRequest(message="slow", delay_ms=60_000), timeout=0.2)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    await wait_until(lambda: service.cancelled)
    assert service.cancelled == ["/echo.v1.Echo/Unary"]


async def test_server_sees_the_propagated_timeout(echo_pb: ModuleType, served: Any) -> None:
    """The handler's time_remaining() comes from the client's timeout (an unusual 1000 s, so no
    default can pass): at most that, and more than 900 s (a 100 s margin for the call's own
    time: a liveness bound, not a speed measure)."""
    stub, _, _ = served
    reply = await stub.unary(echo_pb.EchoRequest(message="deadline"), timeout=1000)
    assert 900.0 < float(reply.message) <= 1000.0
    no_deadline = await stub.unary(echo_pb.EchoRequest(message="deadline"))
    assert no_deadline.message == "None"


async def test_deadline_expiring_mid_server_stream_is_deadline_exceeded(
    echo_pb: ModuleType,
) -> None:
    """The handler sends two replies, then waits for something that never comes: the client
    reads both replies, then DEADLINE_EXCEEDED, and the handler is cancelled."""
    handler_cancelled = asyncio.Event()

    class TwoRepliesThenHang(type(make_echo_service(echo_pb, "s1"))):  # type: ignore[misc]
        async def server_stream(self, request: Any, context: rpcfw.CallContext) -> Any:
            for index in range(2):
                yield echo_pb.EchoResponse(message=f"reply {index}", index=index)
            try:
                await asyncio.Event().wait()  # never set: only the deadline ends the call
            except asyncio.CancelledError:
                handler_cancelled.set()
                raise

    server = rpcfw.Server([TwoRepliesThenHang()])
    await server.start()
    try:
        async with rpcfw.Channel(server.address) as channel:
            events: list[str] = []
            with pytest.raises(rpcfw.RpcError) as info:
                # the deadline need only outlast two local replies: 2 s is generous
                async for reply in echo_pb.EchoStub(channel).server_stream(
                    echo_pb.EchoRequest(count=5), timeout=2
                ):
                    events.append(reply.message)
            events.append(f"error {info.value.status.name}")
            async with asyncio.timeout(LIVENESS):  # liveness bound only
                await handler_cancelled.wait()
    finally:
        await server.stop(grace=1)
    assert events == ["reply 0", "reply 1", "error DEADLINE_EXCEEDED"]


async def test_cancelling_the_calling_task_cancels_the_server_handler(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    task = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(delay_ms=60_000)))
    await wait_until(lambda: service.delaying == 1)  # the handler is in its (slow) delay
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: service.cancelled)


async def test_bidi_cancel_wakes_the_reader_with_cancelled(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    async with stub.bidi() as stream:
        await stream.send(echo_pb.EchoRequest(delay_ms=60_000))
        reader = asyncio.ensure_future(stream.recv())
        await wait_until(lambda: service.delaying == 1)  # the handler is in its (slow) delay
        assert not reader.done()  # the reader waits for a reply that is not coming
        assert stream.cancel()
        with pytest.raises(rpcfw.RpcError) as info:
            await asyncio.wait_for(reader, LIVENESS)  # liveness bound only
        assert info.value.status is Status.CANCELLED
    await wait_until(lambda: service.cancelled)


async def test_leaving_a_server_stream_early_cancels_it(echo_pb: ModuleType, served: Any) -> None:
    stub, _, service = served
    calls = stub.server_stream(echo_pb.EchoRequest(count=100, delay_ms=50))
    async for _ in calls:
        break
    await calls.aclose()
    await wait_until(lambda: service.cancelled)


@pytest.mark.parametrize("path", ["/echo.v1.Echo/Nope", "/no.such.Service/Unary"])
async def test_unknown_method_or_service_is_unimplemented(
    echo_pb: ModuleType, served: Any, path: str
) -> None:
    _, channel, _ = served
    spec = rpcfw.MethodSpec(
        path, rpcfw.Cardinality.UNARY_UNARY, echo_pb.EchoRequest, echo_pb.EchoResponse
    )
    with pytest.raises(rpcfw.RpcError) as info:
        await channel.unary_unary(spec, echo_pb.EchoRequest())
    assert info.value.status is Status.UNIMPLEMENTED
    assert ("unknown service" if "no.such" in path else "unknown method") in (
        info.value.message or ""
    )


async def test_oversized_request_is_resource_exhausted_and_server_keeps_serving(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, _ = served
    with pytest.raises(rpcfw.RpcError) as info:
        await stub.unary(echo_pb.EchoRequest(payload=b"x" * (1024 * 1024 + 1)))
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert (await stub.unary(echo_pb.EchoRequest(message="after"))).message == "after"


async def test_oversized_response_is_resource_exhausted_on_the_client(echo_pb: ModuleType) -> None:
    server = rpcfw.Server(
        [make_echo_service(echo_pb, "s1")], max_receive_message_length=8 * 1024 * 1024
    )
    await server.start()
    async with rpcfw.Channel(server.address) as channel:  # default 4 MiB receive limit
        stub = echo_pb.EchoStub(channel)
        with pytest.raises(rpcfw.RpcError) as info:
            await stub.unary(echo_pb.EchoRequest(payload=b"x" * (5 * 1024 * 1024)))
        assert info.value.status is Status.RESOURCE_EXHAUSTED
        big = await stub.unary(echo_pb.EchoRequest(payload=b"y" * (4 * 1024 * 1024 - 64)))
        assert len(big.payload) == 4 * 1024 * 1024 - 64
    await server.stop(grace=1)


class _Garbage:
    """A 'message' whose bytes are not valid protobuf (corrupt request fault)."""

    def SerializeToString(self) -> bytes:
        return b"\xff\xff\xff\xff"

    @classmethod
    def FromString(cls, data: bytes) -> _Garbage:
        return cls()


async def test_corrupt_request_bytes_are_internal_error(echo_pb: ModuleType, served: Any) -> None:
    _, channel, _ = served
    spec = rpcfw.MethodSpec(
        "/echo.v1.Echo/Unary", rpcfw.Cardinality.UNARY_UNARY, _Garbage, echo_pb.EchoResponse
    )
    with pytest.raises(rpcfw.RpcError) as info:
        await channel.unary_unary(spec, _Garbage())
    assert info.value.status is Status.INTERNAL and "decode" in (info.value.message or "")


async def test_invalid_metadata_key_is_rejected_before_sending(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    before = service.calls
    with pytest.raises(ValueError, match="invalid metadata key"):
        await stub.unary(echo_pb.EchoRequest(), metadata={"Bad Key": "v"})
    assert service.calls == before


async def test_nothing_listening_is_unavailable_fast(echo_pb: ModuleType) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            # fails before its deadline: UNAVAILABLE, not DEADLINE_EXCEEDED, proves it is fast
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(), timeout=LIVENESS)
        assert info.value.status is Status.UNAVAILABLE and "failed to connect" in (
            info.value.message or ""
        )


async def test_call_on_closed_channel_is_unavailable(echo_pb: ModuleType, served: Any) -> None:
    _, channel, _ = served
    await channel.close()
    with pytest.raises(rpcfw.ChannelClosedError):
        await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())
