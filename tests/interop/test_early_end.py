"""A server that ends a call while the client still has its request stream open.

The server then sends its trailers followed by RST_STREAM (NO_ERROR), and the client usually reads
all of it at once: what came before the reset (replies, initial metadata, the status) must still
reach the caller. rpcfw's client used to drop the replies, and report an OK ending as INTERNAL.

Tests that read "after everything arrived" wait for that state (the transport stream has the
trailers and the reset; for grpcio's client, the wire tap forwarded the reset), not for time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw

from ..echo_service import LIVENESS, wait_until
from .conftest import ConnectGrpc, Peer
from .grpc_peer import SERVICE
from .wiretap import RST_STREAM, WireTap


def everything_arrived(stream: rpcfw.BidiStream[Any, Any]) -> bool:
    """The call's transport stream got the server's end (trailers) and its RST_STREAM, none of
    it read by the caller yet."""
    call = stream._call
    transport = None if call is None else call._stream
    return transport is not None and transport.end_received and transport.error is not None


def reader_parked(stream: rpcfw.BidiStream[Any, Any]) -> bool:
    """A reader waits on the call's transport stream (for the response headers)."""
    call = stream._call
    transport = None if call is None else call._stream
    return transport is not None and transport._reader is not None


async def test_rpcfw_client_bidi_reads_replies_sent_before_the_servers_abort(
    echo_pb: ModuleType, server: Peer
) -> None:
    async with (
        asyncio.timeout(LIVENESS),  # liveness bound only
        rpcfw.Channel(server.address) as channel,
        echo_pb.EchoStub(channel).bidi() as stream,
    ):
        for word in ("a", "b", "abort:5:gone"):
            await stream.send(echo_pb.EchoRequest(message=word))
        await wait_until(lambda: everything_arrived(stream))  # all of it, before we read
        assert [(await stream.recv()).message for _ in range(2)] == ["a", "b"]  # type: ignore[union-attr]
        with pytest.raises(rpcfw.RpcError) as info:
            await stream.recv()
    assert (info.value.status, info.value.message) == (rpcfw.Status.NOT_FOUND, "gone")


async def test_rpcfw_client_bidi_reader_already_waiting_gets_replies_then_the_abort_status(
    echo_pb: ModuleType, server: Peer
) -> None:
    async def read_all(
        stream: rpcfw.BidiStream[Any, Any],
    ) -> tuple[list[str], rpcfw.RpcError | None]:
        messages = []
        try:
            async for reply in stream:
                messages.append(reply.message)
        except rpcfw.RpcError as exc:
            return messages, exc
        return messages, None

    async with asyncio.timeout(LIVENESS), rpcfw.Channel(server.address) as channel:
        for _ in range(5):
            async with echo_pb.EchoStub(channel).bidi() as stream:
                reader = asyncio.ensure_future(read_all(stream))
                await wait_until(lambda: reader_parked(stream))  # waits for the headers
                for word in ("a", "b", "abort:5:gone"):
                    await stream.send(echo_pb.EchoRequest(message=word))
                messages, error = await reader
            assert messages == ["a", "b"]
            assert error is not None and (error.status, error.message) == (
                rpcfw.Status.NOT_FOUND,
                "gone",
            )


async def test_grpcio_client_bidi_reads_replies_sent_before_the_servers_abort(
    echo_pb: ModuleType, server: Peer, grpc_client: ConnectGrpc, wiretap: WireTap
) -> None:
    await wiretap.start(server.port)
    client = grpc_client(wiretap.address)
    async with asyncio.timeout(LIVENESS):  # liveness bound only
        call = client.bidi()
        for word in ("a", "b", "abort:5:gone"):
            await call.write(echo_pb.EchoRequest(message=word))
        # the server's reset went to the client: replies, trailers and reset are all its own
        await wait_until(lambda: wiretap.sent("server", RST_STREAM))
        assert [(await call.read()).message for _ in range(2)] == ["a", "b"]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.NOT_FOUND, "gone")


async def test_rpcfw_client_bidi_gets_ok_when_grpcio_server_ends_before_the_client_half_closes(
    echo_pb: ModuleType,
) -> None:
    async def two_replies_then_ok(requests: Any, context: Any) -> AsyncIterator[Any]:
        context.set_trailing_metadata((("x-ended", "by the server"),))
        for word in ("one", "two"):
            yield echo_pb.EchoResponse(message=word)

    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(
        two_replies_then_ok, echo_pb.EchoRequest.FromString, echo_pb.EchoResponse.SerializeToString
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Bidi": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            asyncio.timeout(LIVENESS),  # liveness bound only
            rpcfw.Channel(f"127.0.0.1:{port}") as channel,
            echo_pb.EchoStub(channel).bidi() as stream,
        ):
            await stream.send(echo_pb.EchoRequest(message="never half-closed"))
            await wait_until(lambda: everything_arrived(stream))  # the server ended the call
            assert [r.message async for r in stream] == ["one", "two"]
            # ended by the server's OK trailers (their metadata came with them), not by the reset
            assert stream.error is None and stream.trailing_metadata is not None
            assert stream.trailing_metadata.get_text("x-ended") == "by the server"
    finally:
        await server.stop(0)


async def test_rpcfw_client_streaming_gets_the_error_status_sent_before_it_half_closed(
    echo_pb: ModuleType, server: Peer
) -> None:
    """Fault: the server aborts a client-streaming call (status, then RST_STREAM NO_ERROR)
    while the client's request iterator is still waiting for its next item. The call ends with
    that status (it used to wait for the iterator, or report UNIMPLEMENTED "no response")."""
    never = asyncio.Event()
    sent: list[str] = []

    async def requests() -> AsyncIterator[Any]:
        for word in ("a", "abort:9:stop here"):
            sent.append(word)
            yield echo_pb.EchoRequest(message=word)
        await never.wait()  # the client would go on sending; the server has answered
        yield echo_pb.EchoRequest(message="never sent")

    async with asyncio.timeout(10), rpcfw.Channel(server.address) as channel:  # liveness bound
        with pytest.raises(rpcfw.RpcError) as info:
            await echo_pb.EchoStub(channel).client_stream(requests())
    assert info.value.status is rpcfw.Status.FAILED_PRECONDITION
    assert info.value.message == "stop here"
    assert sent == ["a", "abort:9:stop here"]


async def test_rpcfw_client_streaming_with_a_failing_iterator_cancels_the_call(
    echo_pb: ModuleType, server: Peer, wiretap: WireTap
) -> None:
    """Fault: the request iterator raises mid-call. The caller gets that exception and the
    server gets RST_STREAM CANCEL (seen on the wire), not a half-close that reads as "done"."""

    class Broken(Exception):
        pass

    async def requests() -> AsyncIterator[Any]:
        yield echo_pb.EchoRequest(message="a", delay_ms=60_000)  # the handler sits on it
        raise Broken("iterator failed")

    await wiretap.start(server.port)
    async with asyncio.timeout(10), rpcfw.Channel(wiretap.address) as channel:  # liveness
        with pytest.raises(Broken):
            await echo_pb.EchoStub(channel).client_stream(requests())
        await wait_until(lambda: wiretap.sent("client", RST_STREAM), within=5)
    assert [f.error_code for f in wiretap.sent("client", RST_STREAM)] == [8]  # CANCEL
    assert not [f for f in wiretap.sent("client", 0x0) if f.flags & 0x1]  # never END_STREAM


async def test_rpcfw_bidi_status_and_every_later_recv_report_the_servers_error(
    echo_pb: ModuleType, server: Peer
) -> None:
    """Fault: the server ends a bidi call with an error status (after one reply) before the
    client half-closes. ``recv()`` raises it, a second ``recv()`` raises it again (it used to
    return None, which reads as "ended OK"), and ``status`` reports it (it used to say OK)."""
    async with (
        asyncio.timeout(10),  # liveness bound
        rpcfw.Channel(server.address) as channel,
        echo_pb.EchoStub(channel).bidi() as stream,
    ):
        await stream.send(echo_pb.EchoRequest(message="a"))
        assert (await stream.recv()).message == "a"  # type: ignore[union-attr]
        assert stream.status is None  # still running
        await stream.send(echo_pb.EchoRequest(message="abort:9:no more"))
        for _ in range(2):
            with pytest.raises(rpcfw.RpcError) as info:
                await stream.recv()
            assert info.value.status is rpcfw.Status.FAILED_PRECONDITION
        assert stream.status is rpcfw.Status.FAILED_PRECONDITION
