"""``Channel`` on both anyio backends (asyncio and trio), against ``Server.serve()`` on the same
backend and against a grpcio server.

On trio the channel runs every background task (connection IO, connect loops, health watches,
resolver, timers) in the task group of its ``async with`` block; on asyncio the same test
bodies run the asyncio fast path. Checked: the four call kinds, balancing over three servers,
deadlines and cancel scopes ending calls (the server's handler sees the cancellation), a bidi
call read and written from two tasks, a failing request iterator, a server going away, health
checking, ``dns:///`` targets, and what happens without ``async with`` or with a target kind
that needs asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from types import ModuleType
from typing import Any

import anyio
import grpc
import pytest

import rpcfw
from tests.echo_service import wait_until
from tests.integration.test_anyio_server import SERVICE, anyio_echo

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


class Servers:
    """Echo servers on ``Server.serve()`` in one task group; each can be stopped alone."""

    def __init__(self, group: anyio.abc.TaskGroup, echo: ModuleType) -> None:
        self.group = group
        self.echo = echo
        self.services: list[Any] = []
        self.ports: list[int] = []
        self.scopes: list[anyio.CancelScope] = []
        self.servers: list[rpcfw.Server] = []

    async def add(self, health: bool = True) -> int:
        service = anyio_echo(self.echo)
        service.server_id = f"s{len(self.services)}"
        server = rpcfw.Server([service], health=health)
        scope = anyio.CancelScope()

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            with scope:
                await server.serve("127.0.0.1", 0, task_status=task_status)

        port = await self.group.start(serve)
        self.services.append(service)
        self.ports.append(port)
        self.scopes.append(scope)
        self.servers.append(server)
        return port

    def target(self) -> str:
        return "static:///" + ",".join(f"127.0.0.1:{port}" for port in self.ports)


def run(backend: str, body: Callable[[Servers], Awaitable[Any]], echo: ModuleType) -> Any:
    async def main() -> Any:
        async with anyio.create_task_group() as group:
            servers = Servers(group, echo)
            with anyio.fail_after(LIVENESS):
                result = await body(servers)
            group.cancel_scope.cancel()
        return result

    return anyio.run(main, backend=backend)


def stub(channel: rpcfw.Channel, echo: ModuleType) -> Any:
    return echo.EchoStub(channel)


async def requests(echo: ModuleType, *words: str) -> AsyncIterator[Any]:
    for word in words:
        yield echo.EchoRequest(message=word)


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_makes_all_four_call_kinds_to_an_rpcfw_server(
    backend: str, echo_pb: ModuleType
) -> None:
    async def body(servers: Servers) -> list[Any]:
        await servers.add()
        async with rpcfw.Channel(servers.target()) as channel:
            echo = stub(channel, echo_pb)
            request = echo_pb.EchoRequest
            unary = await echo.unary(request(message="one"))
            streamed = [r.index async for r in echo.server_stream(request(message="s", count=3))]
            client_streamed = await echo.client_stream(requests(echo_pb, "a", "b", "c"))
            async with echo.bidi() as bidi:
                for word in ("x", "y"):
                    await bidi.send(request(message=word))
                await bidi.done_writing()
                bidi_replies = [r.message async for r in bidi]
            return [unary.message, streamed, client_streamed.message, bidi_replies]

    assert run(backend, body, echo_pb) == ["one", [0, 1, 2], "a,b,c", ["x", "y"]]


class GrpcioEcho:
    """A grpcio (C-core) server with unary and server-streaming Echo handlers."""

    def __init__(self, echo: ModuleType) -> None:
        self.echo = echo
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(
                self.unary, echo.EchoRequest.FromString, echo.EchoResponse.SerializeToString
            ),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                self.server_stream,
                echo.EchoRequest.FromString,
                echo.EchoResponse.SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE.lstrip("/"), handlers)]
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def unary(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.message.startswith("abort:"):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, request.message[6:])
        return self.echo.EchoResponse(message=request.message, server_id="grpcio")

    def server_stream(self, request: Any, context: grpc.ServicerContext) -> Any:
        for index in range(request.count):
            yield self.echo.EchoResponse(message=request.message, index=index)


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_calls_a_grpcio_server_and_gets_its_error_status(
    backend: str, echo_pb: ModuleType
) -> None:
    peer = GrpcioEcho(echo_pb)
    peer.server.start()

    async def main() -> list[Any]:
        async with rpcfw.Channel(f"127.0.0.1:{peer.port}") as channel:
            echo = stub(channel, echo_pb)
            with anyio.fail_after(LIVENESS):
                reply = await echo.unary(echo_pb.EchoRequest(message="hi"))
                stream = echo.server_stream(echo_pb.EchoRequest(message="s", count=4))
                indexes = [r.index async for r in stream]
                with pytest.raises(rpcfw.RpcError) as failed:
                    await echo.unary(echo_pb.EchoRequest(message="abort:no"))
        return [reply.server_id, indexes, failed.value.status, failed.value.message]

    try:
        result = anyio.run(main, backend=backend)
    finally:
        peer.server.stop(None)
    assert result == ["grpcio", [0, 1, 2, 3], rpcfw.Status.PERMISSION_DENIED, "no"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_robin_spreads_calls_over_three_servers(backend: str, echo_pb: ModuleType) -> None:
    async def body(servers: Servers) -> dict[str, int]:
        for _ in range(3):
            await servers.add()
        counts: dict[str, int] = {}
        async with rpcfw.Channel(
            servers.target(), balancer="round_robin", wait_for_ready=True
        ) as channel:
            echo = stub(channel, echo_pb)
            while len(counts) < 3:  # until every endpoint is READY (each connects on its own)
                reply = await echo.unary(echo_pb.EchoRequest(message="warm"))
                counts[reply.server_id] = 0
            for _ in range(30):
                reply = await echo.unary(echo_pb.EchoRequest(message="x"))
                counts[reply.server_id] += 1
        return counts

    assert run(backend, body, echo_pb) == {"s0": 10, "s1": 10, "s2": 10}


@pytest.mark.parametrize("backend", BACKENDS)
def test_deadline_and_cancel_scope_end_calls_and_cancel_the_server_handler(
    backend: str, echo_pb: ModuleType
) -> None:
    """Faults: a call past its deadline; a caller whose cancel scope is cancelled mid-call.
    The first ends DEADLINE_EXCEEDED, the second propagates the caller's cancellation; each
    time the server's handler is cancelled (RST_STREAM CANCEL) and the channel goes on."""

    async def body(servers: Servers) -> list[Any]:
        await servers.add()
        service = servers.services[0]
        async with rpcfw.Channel(servers.target()) as channel:
            echo = stub(channel, echo_pb)
            slow = echo_pb.EchoRequest(message="slow", delay_ms=60_000)
            with pytest.raises(rpcfw.RpcError) as late:
                await echo.unary(slow, timeout=0.2)
            with anyio.CancelScope() as scope:

                async def cancel_when_sleeping() -> None:
                    await service.sleeping.wait()
                    scope.cancel()

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_when_sleeping)
                    service.sleeping = anyio.Event()
                    await echo.unary(slow)
            await wait_until(lambda: len(service.cancelled) == 2)  # the second reset
            after = await echo.unary(echo_pb.EchoRequest(message="after"))
            return [late.value.status, scope.cancelled_caught, service.cancelled, after.message]

    status, caught, cancelled, after = run(backend, body, echo_pb)
    assert status is rpcfw.Status.DEADLINE_EXCEEDED and caught
    assert cancelled == [f"{SERVICE}/Unary"] * 2
    assert after == "after"


@pytest.mark.parametrize("backend", BACKENDS)
def test_bidi_call_is_written_and_read_from_two_tasks(backend: str, echo_pb: ModuleType) -> None:
    async def body(servers: Servers) -> list[str]:
        await servers.add()
        received: list[str] = []
        async with (
            rpcfw.Channel(servers.target()) as channel,
            stub(channel, echo_pb).bidi(metadata={"x-call": "two-tasks"}) as bidi,
        ):

            async def writer() -> None:
                for index in range(50):
                    await bidi.send(echo_pb.EchoRequest(message=str(index)))
                await bidi.done_writing()

            async def reader() -> None:
                async for reply in bidi:
                    received.append(reply.message)

            async with anyio.create_task_group() as group:
                group.start_soon(reader)
                group.start_soon(writer)
            trailers = bidi.trailing_metadata
        return [trailers, received]

    trailers, received = run(backend, body, echo_pb)
    assert received == [str(index) for index in range(50)]
    # the reader read to the server's trailers (the metadata they echo arrived with them)
    assert trailers is not None and trailers.get_text("x-call") == "two-tasks"


@pytest.mark.parametrize("backend", BACKENDS)
def test_failing_request_iterator_cancels_a_client_streaming_call(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: the request iterator raises after one request while the server waits for more.
    The caller gets that error; the call is cancelled, not left to its deadline."""

    async def body(servers: Servers) -> Any:
        await servers.add()

        async def failing() -> AsyncIterator[Any]:
            yield echo_pb.EchoRequest(message="first")
            raise ValueError("no more requests")

        async with rpcfw.Channel(servers.target()) as channel:
            echo = stub(channel, echo_pb)
            with pytest.raises(ValueError, match="no more requests"):
                await echo.client_stream(failing())
            return (await echo.unary(echo_pb.EchoRequest(message="still"))).message

    assert run(backend, body, echo_pb) == "still"


@pytest.mark.parametrize("backend", BACKENDS)
def test_calls_move_to_the_other_server_when_one_goes_away(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: one of two servers is stopped (its task group cancelled: GOAWAY, then close).
    Every later call succeeds, on the server that is left."""

    async def body(servers: Servers) -> list[str]:
        await servers.add()
        await servers.add()
        async with rpcfw.Channel(
            servers.target(), balancer="round_robin", wait_for_ready=True
        ) as channel:
            echo = stub(channel, echo_pb)
            seen: set[str] = set()
            while len(seen) < 2:
                seen.add((await echo.unary(echo_pb.EchoRequest(message="w"))).server_id)
            servers.scopes[0].cancel()
            # the GOAWAY went out, the socket closed
            await wait_until(lambda: not servers.servers[0].open_connections)
            request = echo_pb.EchoRequest(message="x")
            return [(await echo.unary(request)).server_id for _ in range(10)]

    assert run(backend, body, echo_pb) == ["s1"] * 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_health_checked_channel_and_dns_target(backend: str, echo_pb: ModuleType) -> None:
    """A channel that watches grpc.health.v1 (the server's Watch on this backend too) and one
    on a ``dns:///`` target both reach the server."""

    async def body(servers: Servers) -> list[str]:
        port = await servers.add()
        replies = []
        for target, health_check in [(servers.target(), ""), (f"dns:///127.0.0.1:{port}", None)]:
            async with rpcfw.Channel(
                target, wait_for_ready=True, health_check=health_check
            ) as channel:
                reply = await stub(channel, echo_pb).unary(echo_pb.EchoRequest(message="ok"))
                replies.append(reply.message)
                assert channel.state == "READY"
        return replies

    assert run(backend, body, echo_pb) == ["ok", "ok"]


def test_leaving_the_channel_block_on_trio_closes_its_connections(echo_pb: ModuleType) -> None:
    """The block's task group owns the channel's tasks: once it is left, the server has seen
    the connection close (nothing of the channel runs any more)."""

    async def body(servers: Servers) -> int:
        await servers.add()
        async with rpcfw.Channel(servers.target()) as channel:
            await stub(channel, echo_pb).unary(echo_pb.EchoRequest(message="x"))
            assert servers.servers[0].open_connections == 1
        await wait_until(lambda: not servers.servers[0].open_connections)
        return servers.servers[0].open_connections

    assert run("trio", body, echo_pb) == 0


def test_trio_channel_without_async_with_asyncio_only_targets_and_errors_fail_clearly(
    echo_pb: ModuleType,
) -> None:
    async def main() -> list[str]:
        messages = []
        channel = rpcfw.Channel("127.0.0.1:1")
        with pytest.raises(RuntimeError) as no_block:
            await stub(channel, echo_pb).unary(echo_pb.EchoRequest(message="x"))
        messages.append(str(no_block.value))
        await channel.close()
        async with rpcfw.Channel("local:///echo") as channel:
            with pytest.raises(RuntimeError) as asyncio_only:
                await stub(channel, echo_pb).unary(echo_pb.EchoRequest(message="x"))
            messages.append(str(asyncio_only.value))
        # an error leaving the block is the caller's own, not wrapped in an ExceptionGroup
        with pytest.raises(rpcfw.RpcError) as refused:
            async with rpcfw.Channel("127.0.0.1:1") as channel:
                await stub(channel, echo_pb).unary(echo_pb.EchoRequest(message="x"))
        messages.append(refused.value.status.name)
        return messages

    no_block, asyncio_only, refused = anyio.run(main, backend="trio")
    assert "async with Channel(...)" in no_block
    assert "local:// targets run on asyncio only" in asyncio_only
    assert refused == "UNAVAILABLE"  # nothing listens on port 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_gzip_messages_both_ways(backend: str, echo_pb: ModuleType) -> None:
    """A 144 KB message takes the worker-thread zlib path (over 32 KiB) on either backend,
    a small one the event-loop path; both arrive intact."""
    payload = b"compressible text " * 8000  # 144 KB

    async def body(servers: Servers) -> list[bool]:
        service = anyio_echo(echo_pb)
        server = rpcfw.Server([service], compression="gzip")
        port = await servers.group.start(server.serve, "127.0.0.1", 0)
        servers.servers.append(server)
        async with rpcfw.Channel(f"127.0.0.1:{port}", compression="gzip") as channel:
            echo = stub(channel, echo_pb)
            big = await echo.unary(echo_pb.EchoRequest(message="big", payload=payload))
            small = await echo.unary(echo_pb.EchoRequest(message="small"))
        return [big.payload == payload, small.message == "small"]

    assert run(backend, body, echo_pb) == [True, True]
