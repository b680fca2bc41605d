"""A handler's streams are closed when its call ends, not left to the garbage collector: the
request iterator a client- or bidi-streaming handler stops reading early, and the response
generator of a server- or bidi-streaming handler whose client went away. Checked on asyncio
and trio (where an unclosed async generator is an "unraisable exception", which the test run
turns into a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import pytest

import rpcfw

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it


def make_service(echo: ModuleType, closed: list[str], closing: anyio.Event) -> Any:
    class Echo(echo.EchoBase):  # type: ignore[misc,name-defined]
        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            return echo.EchoResponse(message=request.message)

        async def server_stream(self, request: Any, context: rpcfw.CallContext) -> Any:
            try:
                for index in range(1000):
                    yield echo.EchoResponse(index=index)
            finally:
                closed.append("server_stream")
                closing.set()

        async def client_stream(
            self, requests: AsyncIterator[Any], context: rpcfw.CallContext
        ) -> Any:
            async for request in requests:  # the first request decides: stop reading early
                context.abort(rpcfw.Status.FAILED_PRECONDITION, f"refused {request.message}")
            return echo.EchoResponse()

        async def bidi(self, requests: AsyncIterator[Any], context: rpcfw.CallContext) -> Any:
            try:
                async for request in requests:
                    yield echo.EchoResponse(message=request.message)
            finally:
                closed.append("bidi")
                closing.set()

    return Echo()


class EndRecorder(rpcfw.ServerInterceptor):
    """Records the end of each call, after its handler is done."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def on_end(self, context: rpcfw.CallContext) -> None:
        self.events.append("call ended")


def serve(backend: str, echo: ModuleType, body: Any) -> list[str]:
    """Runs ``body(channel, closing)`` against a server on ``backend``; returns the order in
    which handlers' finally blocks ran and calls ended."""
    closed: list[str] = []

    async def main() -> None:
        closing = anyio.Event()  # a streaming handler's finally ran
        service = make_service(echo, closed, closing)
        server = rpcfw.Server([service], interceptors=[EndRecorder(closed)])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            with anyio.fail_after(LIVENESS):
                async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
                    await body(channel, closing)
            group.cancel_scope.cancel()

    anyio.run(main, backend=backend)
    return closed


@pytest.mark.parametrize("backend", BACKENDS)
def test_handler_that_stops_reading_its_request_stream_early_closes_it(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: the handler aborts after the first of three requests, with two still unread."""

    async def body(channel: rpcfw.Channel, closing: anyio.Event) -> None:
        words = [echo_pb.EchoRequest(message=w) for w in ("a", "b", "c")]
        with pytest.raises(rpcfw.RpcError) as caught:
            await echo_pb.EchoStub(channel).client_stream(words)
        assert caught.value.code is rpcfw.Status.FAILED_PRECONDITION
        assert caught.value.message == "refused a"

    assert serve(backend, echo_pb, body) == ["call ended"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_stream_handler_is_closed_when_the_client_cancels(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: the client cancels a server stream after its first reply."""

    async def body(channel: rpcfw.Channel, closing: anyio.Event) -> None:
        request = echo_pb.EchoRequest()
        async with channel.server_stream_call(echo_pb.ECHO_SERVER_STREAM, request) as call:
            assert await call.recv() is not None
            call.cancel()
        await closing.wait()

    # closed by the call's own task, before the call ended (not later by the GC)
    assert serve(backend, echo_pb, body) == ["server_stream", "call ended"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bidi_handler_is_closed_when_the_client_cancels(backend: str, echo_pb: ModuleType) -> None:
    """Fault: the client cancels a bidi stream after one exchange."""

    async def body(channel: rpcfw.Channel, closing: anyio.Event) -> None:
        async with echo_pb.EchoStub(channel).bidi() as stream:
            await stream.send(echo_pb.EchoRequest(message="x"))
            assert (await stream.recv()).message == "x"
            stream.cancel()
        await closing.wait()

    assert serve(backend, echo_pb, body) == ["bidi", "call ended"]
