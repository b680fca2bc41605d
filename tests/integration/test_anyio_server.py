"""``Server.serve()`` on both anyio backends (asyncio and trio), with grpcio as the client.

The server runs in an anyio task group; grpcio's synchronous client calls it from a worker
thread. Checked: the four call kinds, an error status, a deadline that cancels the handler, and
cancelling the task group that serves: the call in flight ends, its handler is cancelled, the
port is closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import anyio
import grpc
import pytest

import rpcfw
from tests.echo_service import echo_metadata_and_abort, make_echo_service

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it
SERVICE = "/echo.v1.Echo"


def anyio_echo(echo: ModuleType) -> Any:
    """The test Echo service with its waits on anyio (the asyncio one cannot run on trio)."""
    base: Any = type(make_echo_service(echo, "anyio"))

    class AnyioEcho(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.sleeping = anyio.Event()  # made in the running loop: the test's

        async def _prepare(self, request: Any, context: rpcfw.CallContext) -> None:
            echo_metadata_and_abort(request, context)
            if request.delay_ms:
                self.sleeping.set()
                try:
                    await anyio.sleep(request.delay_ms / 1000)  # the slow handler under test
                except anyio.get_cancelled_exc_class():
                    self.cancelled.append(context.method)
                    raise

    return AnyioEcho()


class GrpcClient:
    """grpcio's synchronous client on the Echo service (run it in a worker thread)."""

    def __init__(self, port: int, echo: ModuleType) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.echo = echo
        ser = echo.EchoRequest.SerializeToString
        de = echo.EchoResponse.FromString
        self.unary = self.channel.unary_unary(f"{SERVICE}/Unary", ser, de)
        self.server_stream = self.channel.unary_stream(f"{SERVICE}/ServerStream", ser, de)
        self.client_stream = self.channel.stream_unary(f"{SERVICE}/ClientStream", ser, de)
        self.bidi = self.channel.stream_stream(f"{SERVICE}/Bidi", ser, de)

    def requests(self, *words: str) -> Iterator[Any]:
        return iter([self.echo.EchoRequest(message=w) for w in words])


def run(backend: str, body: Callable[[rpcfw.Server, int], Awaitable[Any]], echo: ModuleType) -> Any:
    services: list[Any] = []

    async def main() -> Any:
        services.append(anyio_echo(echo))  # its anyio.Event needs the running backend
        server = rpcfw.Server(services)
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve)
            with anyio.fail_after(LIVENESS):
                result = await body(server, port)
            group.cancel_scope.cancel()
        return result

    return anyio.run(main, backend=backend), services[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_answers_grpcio_for_all_four_call_kinds(backend: str, echo_pb: ModuleType) -> None:
    async def body(server: rpcfw.Server, port: int) -> list[Any]:
        def calls() -> list[Any]:
            client = GrpcClient(port, echo_pb)
            try:
                request = echo_pb.EchoRequest
                return [
                    client.unary(request(message="one")).message,
                    [r.index for r in client.server_stream(request(message="s", count=3))],
                    client.client_stream(client.requests("a", "b", "c")).message,
                    [r.message for r in client.bidi(client.requests("x", "y"))],
                ]
            finally:
                client.channel.close()

        return await anyio.to_thread.run_sync(calls)

    results, _ = run(backend, body, echo_pb)
    assert results == ["one", [0, 1, 2], "a,b,c", ["x", "y"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_carries_large_messages_and_metadata_both_ways(
    backend: str, echo_pb: ModuleType
) -> None:
    """3 MiB each way (past every flow-control window: the server's reads and writes wait on
    WINDOW_UPDATEs on this backend too), and metadata echoed as initial and trailing."""
    payload = bytes(range(256)) * (3 * 4096)

    async def body(server: rpcfw.Server, port: int) -> Any:
        def call() -> Any:
            client = GrpcClient(port, echo_pb)
            try:
                reply, rpc = client.unary.with_call(
                    echo_pb.EchoRequest(message="big", payload=payload),
                    metadata=[("x-trace", "t-1")],
                )
                return reply.payload, rpc.initial_metadata(), rpc.trailing_metadata()
            finally:
                client.channel.close()

        return await anyio.to_thread.run_sync(call)

    (echoed, initial, trailing), _ = run(backend, body, echo_pb)
    assert echoed == payload
    assert ("x-trace", "t-1") in tuple(initial)
    assert ("x-trace", "t-1") in tuple(trailing)


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_sends_error_statuses_and_cancels_a_handler_past_its_deadline(
    backend: str, echo_pb: ModuleType
) -> None:
    async def body(server: rpcfw.Server, port: int) -> list[Any]:
        def calls() -> list[Any]:
            client = GrpcClient(port, echo_pb)
            codes = []
            try:
                for request, timeout in [
                    (echo_pb.EchoRequest(message="abort:9:nope"), None),
                    (echo_pb.EchoRequest(message="slow", delay_ms=60_000), 0.2),
                ]:
                    try:
                        client.unary(request, timeout=timeout)
                    except grpc.RpcError as exc:
                        codes.append((exc.code(), exc.details()))
            finally:
                client.channel.close()
            return codes

        return await anyio.to_thread.run_sync(calls)

    codes, service = run(backend, body, echo_pb)
    assert codes[0] == (grpc.StatusCode.FAILED_PRECONDITION, "nope")
    assert codes[1][0] is grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.cancelled == [f"{SERVICE}/Unary"]  # the handler did not sleep 60 s


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_the_task_group_that_serves_stops_the_server_and_its_calls(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: the application cancels the task group running ``serve()`` while a call is in
    its handler. The client gets UNAVAILABLE, the handler is cancelled, the port closes."""
    outcome: dict[str, Any] = {}

    async def main() -> None:
        service = anyio_echo(echo_pb)
        server = rpcfw.Server([service])
        async with anyio.create_task_group() as clients:
            with anyio.CancelScope() as serving:
                async with anyio.create_task_group() as group:
                    port = await group.start(server.serve)

                    def slow_call() -> None:
                        client = GrpcClient(port, echo_pb)
                        try:
                            client.unary(echo_pb.EchoRequest(message="slow", delay_ms=60_000))
                        except grpc.RpcError as exc:
                            outcome["code"] = exc.code()
                        finally:
                            client.channel.close()

                    clients.start_soon(anyio.to_thread.run_sync, slow_call)
                    with anyio.fail_after(LIVENESS):
                        await service.sleeping.wait()  # the handler is in its 60 s wait
                    serving.cancel()  # as an application shutting down its task group
            # leaving ``clients`` waits for the client's thread to see how its call ended
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)
        outcome["cancelled"] = list(service.cancelled)

    anyio.run(main, backend=backend)
    assert outcome["code"] is grpc.StatusCode.UNAVAILABLE
    assert outcome["cancelled"] == [f"{SERVICE}/Unary"]
