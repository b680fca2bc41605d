"""``Server.stop(grace)`` for a server run by ``Server.serve()``, on asyncio and trio, with
grpcio as the client (in worker threads).

Checked: a call in flight when the drain begins completes OK while the listener is already
closed and a new call fails UNAVAILABLE without reaching a handler; a call still running when
the grace expires ends UNAVAILABLE and its handler is cancelled; a later ``stop(0)`` cuts a
drain short; cancelling the task group during a drain still stops at once; ``serve()`` returns
normally (its task group exits without cancellation) and the port (or socket file) is gone.
The handlers under test wait on an event the test controls: nothing waits on wall-clock time
except the grace under test (0.2 s) and liveness bounds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import grpc
import pytest

import rpcfw
from rpcfw.health import watch_health
from tests.echo_service import wait_until
from tests.integration.test_anyio_server import SERVICE, GrpcClient, anyio_echo

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it
SHORT_GRACE = 0.2  # the grace that expires in the tests of expiry (the behaviour under test)

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def gated_echo(echo: ModuleType) -> Any:
    """The anyio Echo, where a request with message ``gate`` waits for ``release``."""
    base: Any = type(anyio_echo(echo))

    class GatedEcho(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.entered = anyio.Event()  # a gated handler is waiting
            self.release = anyio.Event()  # the test lets gated handlers finish

        async def _prepare(self, request: Any, context: rpcfw.CallContext) -> None:
            if request.message != "gate":
                await super()._prepare(request, context)
                return
            self.entered.set()
            try:
                await self.release.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(context.method)
                raise

    return GatedEcho()


def draining(server: rpcfw.Server) -> bool:
    """The drain sent its final GOAWAY on every connection (new streams are refused)."""
    serving = server._anyio_serving
    return serving is not None and all(owner.draining for owner in serving.owners)


class Harness:
    """A server run by ``serve()`` in a task group, grpcio calls in threads, their outcomes."""

    def __init__(self, echo: ModuleType) -> None:
        self.echo = echo
        self.service = gated_echo(echo)
        self.server = rpcfw.Server([self.service])
        self.outcome: dict[str, Any] = {}
        self.port = 0
        self.client: GrpcClient | None = None

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        await self.server.serve("127.0.0.1", 0, task_status=task_status)
        self.outcome["serve returned"] = True  # not reached if serve() was cancelled

    async def start(self, group: anyio.abc.TaskGroup) -> None:
        self.port = await group.start(self.serve)
        self.client = GrpcClient(self.port, self.echo)

    def call(self, name: str, message: str) -> None:
        """A unary call from a worker thread; its status (and reply) go to ``outcome``."""
        assert self.client is not None
        try:
            reply = self.client.unary(self.echo.EchoRequest(message=message), timeout=LIVENESS)
            self.outcome[name] = (grpc.StatusCode.OK, reply.message)
        except grpc.RpcError as exc:
            self.outcome[name] = (exc.code(), exc.details())

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)
        self.outcome.setdefault("stop returned", 0)
        self.outcome["stop returned"] += 1

    def close(self) -> None:
        if self.client is not None:
            self.client.channel.close()

    @contextlib.asynccontextmanager
    async def with_a_stuck_call(self) -> AsyncIterator[anyio.abc.TaskGroup]:
        """Serve, start a call (``outcome["stuck"]``) whose handler waits on the gate, and
        yield the serving task group once the handler runs (inside a liveness bound); the
        call's thread is awaited on the way out, then the client closed and the port checked
        closed."""
        async with anyio.create_task_group() as group:
            await self.start(group)
            try:
                async with anyio.create_task_group() as calls:
                    calls.start_soon(anyio.to_thread.run_sync, self.call, "stuck", "gate")
                    with anyio.fail_after(LIVENESS):
                        await self.service.entered.wait()
                        yield group
            finally:
                self.close()
        await assert_port_closed(self.port)


async def assert_port_closed(port: int) -> None:
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_drains_serve_a_call_in_flight_completes_a_new_one_is_refused(
    backend: str, echo_pb: ModuleType
) -> None:
    harness = Harness(echo_pb)
    server, service = harness.server, harness.service

    async def main() -> None:
        async with anyio.create_task_group() as group:  # no cancel: it exits as serve() returns
            await harness.start(group)
            try:
                async with anyio.create_task_group() as calls:
                    calls.start_soon(anyio.to_thread.run_sync, harness.call, "in flight", "gate")
                    with anyio.fail_after(LIVENESS):
                        await service.entered.wait()
                    group.start_soon(harness.stop, LIVENESS)  # the grace: a liveness bound
                    await wait_until(lambda: draining(server))
                    assert server.health is not None
                    assert server.health.get_status("") is rpcfw.ServingStatus.NOT_SERVING
                    await assert_port_closed(harness.port)  # the listener closed first
                    # a new call on the same channel: GOAWAY'd connection, listener closed
                    await anyio.to_thread.run_sync(harness.call, "new", "hello")
                    assert "in flight" not in harness.outcome
                    assert server.running_calls == 1
                    service.release.set()  # the call in flight may finish now
            finally:
                harness.close()
        await assert_port_closed(harness.port)
        assert server.open_connections == 0
        assert server.running_calls == 0

    anyio.run(main, backend=backend)
    outcome = harness.outcome
    assert outcome["in flight"] == (grpc.StatusCode.OK, "gate")
    assert outcome["new"][0] is grpc.StatusCode.UNAVAILABLE
    assert service.calls == 1  # the new call reached no handler
    assert service.cancelled == []
    assert outcome["serve returned"] is True
    assert outcome["stop returned"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_cancels_the_calls_still_running_when_the_grace_expires(
    backend: str, echo_pb: ModuleType
) -> None:
    harness = Harness(echo_pb)
    server, service = harness.server, harness.service

    async def main() -> None:
        async with harness.with_a_stuck_call():
            await harness.stop(SHORT_GRACE)  # never released: the grace expires
            assert harness.outcome["serve returned"] is True  # before stop() returned
            assert server.running_calls == 0
            assert server.open_connections == 0

    anyio.run(main, backend=backend)
    assert harness.outcome["stuck"] == (grpc.StatusCode.UNAVAILABLE, "server is shutting down")
    assert service.cancelled == [f"{SERVICE}/Unary"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_later_stop_0_cuts_a_drain_short(backend: str, echo_pb: ModuleType) -> None:
    harness = Harness(echo_pb)
    server, service = harness.server, harness.service

    async def main() -> None:
        async with harness.with_a_stuck_call() as group:
            group.start_soon(harness.stop, None)  # no limit: it would wait forever
            await wait_until(lambda: draining(server))
            await harness.stop(0)  # as grpc-go's Stop() after GracefulStop()

    anyio.run(main, backend=backend)
    assert harness.outcome["stuck"][0] is grpc.StatusCode.UNAVAILABLE
    assert service.cancelled == [f"{SERVICE}/Unary"]
    assert harness.outcome["serve returned"] is True
    assert harness.outcome["stop returned"] == 2  # both stop() calls returned


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_the_task_group_during_a_drain_stops_at_once(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: the application cancels the serving task group while a drain waits for a call.
    The call ends UNAVAILABLE, its handler is cancelled, the stop() waiting returns."""
    harness = Harness(echo_pb)
    server, service = harness.server, harness.service

    async def main() -> None:
        with anyio.fail_after(LIVENESS):  # leaving ``stoppers`` waits for stop() to return
            async with anyio.create_task_group() as stoppers:
                with anyio.CancelScope() as serving:
                    async with anyio.create_task_group() as group:
                        await harness.start(group)
                        try:
                            async with anyio.create_task_group() as calls:
                                calls.start_soon(
                                    anyio.to_thread.run_sync, harness.call, "stuck", "gate"
                                )
                                await service.entered.wait()
                                stoppers.start_soon(harness.stop, None)  # waits forever
                                await wait_until(lambda: draining(server))
                                serving.cancel()  # as an application shutting down
                        finally:
                            harness.close()
        await assert_port_closed(harness.port)

    anyio.run(main, backend=backend)
    assert harness.outcome["stuck"][0] is grpc.StatusCode.UNAVAILABLE
    assert service.cancelled == [f"{SERVICE}/Unary"]
    assert "serve returned" not in harness.outcome  # it was cancelled, not stopped
    assert harness.outcome["stop returned"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_ends_serve_on_a_unix_socket_and_removes_its_file(
    backend: str, echo_pb: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "echo.sock"
    server = rpcfw.Server([gated_echo(echo_pb)])
    outcome: dict[str, bool] = {}

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        await server.serve(f"unix:{path}", task_status=task_status)
        outcome["serve returned"] = True

    async def main() -> None:
        async with anyio.create_task_group() as group:
            await group.start(serve)
            outcome["file while serving"] = await anyio.Path(path).exists()
            with anyio.fail_after(LIVENESS):
                await server.stop(1.0)
        await server.stop(1.0)  # stopped already: nothing to do

    anyio.run(main, backend=backend)
    assert outcome == {"file while serving": True, "serve returned": True}
    assert not path.exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_tells_health_watchers_not_serving_and_ends_their_watch(
    backend: str, echo_pb: ModuleType
) -> None:
    """A Watch (rpcfw's Channel, on the same backend) sees NOT_SERVING and ends OK before the
    server goes: the drain does not wait out its grace for it."""
    harness = Harness(echo_pb)
    seen: list[rpcfw.ServingStatus] = []

    async def main() -> None:
        with anyio.fail_after(LIVENESS):
            async with anyio.create_task_group() as group:
                await harness.start(group)
                harness.close()  # this test's client is rpcfw's
                channel = rpcfw.Channel(f"127.0.0.1:{harness.port}")

                async def follow() -> None:
                    async for status in watch_health(channel, timeout=LIVENESS):
                        seen.append(status)

                async with channel, anyio.create_task_group() as followers:
                    followers.start_soon(follow)
                    await wait_until(lambda: seen == [rpcfw.ServingStatus.SERVING])
                    await harness.stop(LIVENESS)  # the grace: a liveness bound

    anyio.run(main, backend=backend)
    assert seen == [rpcfw.ServingStatus.SERVING, rpcfw.ServingStatus.NOT_SERVING]
    assert harness.outcome["serve returned"] is True
