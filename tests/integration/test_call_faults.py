"""Faults a call can meet, each named: errors, deadlines, cancellation, bad input, size limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import make_echo_service, wait_until


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
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, _ = served
    with pytest.raises(rpcfw.RpcError) as info:
        await stub.unary(echo_pb.EchoRequest(message="raise"))
    assert info.value.status is Status.UNKNOWN and "boom" in (info.value.message or "")


async def test_error_in_mid_server_stream_arrives_after_the_sent_replies(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, _ = served
    got = []
    with pytest.raises(rpcfw.RpcError) as info:
        async for reply in stub.server_stream(echo_pb.EchoRequest(message="abort:9:stop", count=3)):
            got.append(reply)
    assert info.value.status is Status.FAILED_PRECONDITION and got == []


async def test_expired_deadline_is_deadline_exceeded_and_cancels_the_handler(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    with pytest.raises(rpcfw.RpcError) as info:
        await stub.unary(echo_pb.EchoRequest(message="slow", delay_ms=2000), timeout=0.2)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    await wait_until(lambda: service.cancelled)
    assert service.cancelled == ["/echo.v1.Echo/Unary"]


async def test_server_sees_the_propagated_timeout(echo_pb: ModuleType, served: Any) -> None:
    stub, _, _ = served
    reply = await stub.unary(echo_pb.EchoRequest(message="deadline"), timeout=5)
    assert 4.0 < float(reply.message) <= 5.0


async def test_deadline_expiring_mid_server_stream_is_deadline_exceeded(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, _ = served
    got = []
    with pytest.raises(rpcfw.RpcError) as info:
        async for reply in stub.server_stream(
            echo_pb.EchoRequest(count=10, delay_ms=100), timeout=0.35
        ):
            got.append(reply)
    assert info.value.status is Status.DEADLINE_EXCEEDED and 1 <= len(got) <= 4


async def test_cancelling_the_calling_task_cancels_the_server_handler(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    task = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(delay_ms=5000)))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: service.cancelled)


async def test_bidi_cancel_wakes_the_reader_with_cancelled(
    echo_pb: ModuleType, served: Any
) -> None:
    stub, _, service = served
    async with stub.bidi() as stream:
        await stream.send(echo_pb.EchoRequest(delay_ms=5000))
        reader = asyncio.ensure_future(stream.recv())
        await asyncio.sleep(0.1)
        assert stream.cancel()
        with pytest.raises(rpcfw.RpcError) as info:
            await asyncio.wait_for(reader, 2)
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
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(), timeout=5)
        assert info.value.status is Status.UNAVAILABLE and "failed to connect" in (
            info.value.message or ""
        )


async def test_call_on_closed_channel_is_unavailable(echo_pb: ModuleType, served: Any) -> None:
    _, channel, _ = served
    await channel.close()
    with pytest.raises(rpcfw.ChannelClosedError):
        await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())
