"""The channel's connectivity API (as grpc.aio has it): ``get_state(try_to_connect)``,
``wait_for_state_change(last_state)``, ``channel_ready()``, on asyncio and trio.

Servers run with ``Server.serve()`` on the test's backend. Faults injected: a dead port (a
port nobody listens on: connection refused), the channel closed before and during
``channel_ready()``, and the server going away under a READY channel (its serving task group
cancelled: GOAWAY, then the socket closes), then coming back on the same unix socket.
Everything waits on states, never on sleeps; ``LIVENESS`` only bounds a hang.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import pytest

import rpcfw
from tests.echo_service import make_echo_service
from tests.integration.test_anyio_server import anyio_echo

BACKENDS = ["asyncio", "trio"]
LIVENESS = 10.0  # generous bound: only a hang trips it

IDLE = rpcfw.ConnectivityState.IDLE
CONNECTING = rpcfw.ConnectivityState.CONNECTING
READY = rpcfw.ConnectivityState.READY
TRANSIENT_FAILURE = rpcfw.ConnectivityState.TRANSIENT_FAILURE
SHUTDOWN = rpcfw.ConnectivityState.SHUTDOWN

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


class Serving:
    """One ``Server.serve()`` in a task group, stoppable alone (its scope cancelled)."""

    def __init__(self, group: anyio.abc.TaskGroup, echo: ModuleType) -> None:
        self.group = group
        self.echo = echo
        self.scope: anyio.CancelScope | None = None
        self.ended = anyio.Event()
        self.server: rpcfw.Server | None = None
        self.service: Any = None

    async def start(self, host: str = "127.0.0.1") -> str:
        self.service = anyio_echo(self.echo)
        server = self.server = rpcfw.Server([self.service])
        scope = self.scope = anyio.CancelScope()

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            try:
                with scope:
                    await server.serve(host, 0, task_status=task_status)
            finally:
                self.ended.set()

        await self.group.start(serve)
        return server.address

    async def stop(self) -> None:
        """Cancel serving and wait until it ended (its listener closed)."""
        assert self.scope is not None
        self.scope.cancel()
        await self.ended.wait()


def run(backend: str, body: Callable[[Serving], Awaitable[Any]], echo: ModuleType) -> Any:
    async def main() -> Any:
        async with anyio.create_task_group() as group:
            with anyio.fail_after(LIVENESS):
                result = await body(Serving(group, echo))
            group.cancel_scope.cancel()
        return result

    return anyio.run(main, backend=backend)


async def observe(
    channel: rpcfw.Channel, last: rpcfw.ConnectivityState, until: rpcfw.ConnectivityState
) -> list[rpcfw.ConnectivityState]:
    """The states seen through wait_for_state_change from ``last`` until ``until``."""
    seen: list[rpcfw.ConnectivityState] = []
    while last is not until:
        await channel.wait_for_state_change(last)
        last = channel.get_state()
        seen.append(last)
    return seen


def dead_port() -> int:
    """A port bound and closed again without listening: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("backend", BACKENDS)
def test_try_to_connect_goes_idle_connecting_ready_without_a_call(
    backend: str, echo_pb: ModuleType
) -> None:
    async def body(serving: Serving) -> list[Any]:
        address = await serving.start()
        assert serving.server is not None
        async with rpcfw.Channel(address) as channel:
            first = channel.get_state()
            assert (first, channel.state) == (IDLE, "IDLE")
            assert serving.server.stats.connections_accepted == 0  # a fresh channel does no IO
            channel.get_state(try_to_connect=True)
            seen = [first, *await observe(channel, first, READY)]
            await channel.wait_for_state_change("IDLE")  # returns at once: it differs
            return [seen, channel.state, serving.service.calls]

    assert run(backend, body, echo_pb) == [[IDLE, CONNECTING, READY], "READY", 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_ready_returns_against_a_live_server(backend: str, echo_pb: ModuleType) -> None:
    async def body(serving: Serving) -> list[Any]:
        address = await serving.start()
        async with rpcfw.Channel(address) as channel:
            await channel.channel_ready()
            state = channel.get_state()
            await channel.channel_ready()  # already READY: returns at once
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
            return [state, reply.message]

    assert run(backend, body, echo_pb) == [READY, "hi"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_port_reports_transient_failure_and_never_gets_ready(
    backend: str, echo_pb: ModuleType
) -> None:
    """Fault: nothing listens on the port (connection refused on every attempt)."""

    async def body(serving: Serving) -> list[Any]:
        async with rpcfw.Channel(f"127.0.0.1:{dead_port()}") as channel:
            channel.get_state(try_to_connect=True)
            seen = await observe(channel, IDLE, TRANSIENT_FAILURE)
            with pytest.raises(TimeoutError):
                with anyio.fail_after(0.3):  # the caller bounds channel_ready
                    await channel.channel_ready()
            return [seen, channel.get_state()]

    assert run(backend, body, echo_pb) == [[CONNECTING, TRANSIENT_FAILURE], TRANSIENT_FAILURE]


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_ready_on_a_closed_channel_raises(backend: str, echo_pb: ModuleType) -> None:
    """Faults: the channel closed before channel_ready(), and closed during its wait."""

    async def body(serving: Serving) -> list[Any]:
        address = await serving.start()
        never_used = rpcfw.Channel(address)
        await never_used.close()
        assert never_used.get_state(try_to_connect=True) is SHUTDOWN  # closed: no connecting
        with pytest.raises(rpcfw.ChannelClosedError):
            await never_used.channel_ready()

        used = rpcfw.Channel(address)
        async with used:
            await used.channel_ready()
        assert used.state == "SHUTDOWN"
        with pytest.raises(rpcfw.ChannelClosedError):
            await used.channel_ready()
        with pytest.raises(rpcfw.ChannelClosedError):  # SHUTDOWN never changes again
            await used.wait_for_state_change(SHUTDOWN)

        failures: list[BaseException] = []
        async with rpcfw.Channel(f"127.0.0.1:{dead_port()}") as waiting:

            async def wait_ready() -> None:
                try:
                    await waiting.channel_ready()
                except rpcfw.ChannelClosedError as exc:
                    failures.append(exc)

            async with anyio.create_task_group() as group:
                group.start_soon(wait_ready)
                await observe(waiting, IDLE, TRANSIENT_FAILURE)  # channel_ready is waiting
                await waiting.close()
        return [type(f).__name__ for f in failures]

    assert run(backend, body, echo_pb) == ["ChannelClosedError"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_going_away_takes_a_ready_channel_to_idle_and_channel_ready_reconnects(
    backend: str, echo_pb: ModuleType, tmp_path: Path
) -> None:
    """Fault: the server stops under a READY channel (its serving task group cancelled:
    GOAWAY, then the socket closes). The channel goes IDLE (not TRANSIENT_FAILURE: nothing
    failed yet); channel_ready() then connects again, to a new server on the same unix socket.
    """
    target = f"unix:{tmp_path / 'echo.sock'}"

    async def body(serving: Serving) -> list[Any]:
        await serving.start(target)
        async with rpcfw.Channel(target) as channel:
            await channel.channel_ready()
            await serving.stop()
            after_stop = await observe(channel, READY, IDLE)
            restarted = Serving(serving.group, echo_pb)
            await restarted.start(target)
            await channel.channel_ready()
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="back"))
            await restarted.stop()
            return [after_stop, reply.message]

    assert run(backend, body, echo_pb) == [[IDLE], "back"]


async def test_graceful_stop_takes_a_ready_channel_to_idle(echo_pb: ModuleType) -> None:
    """Fault: ``Server.stop(grace)`` (GOAWAY, drain, close) under a READY channel."""
    server = rpcfw.Server([make_echo_service(echo_pb, "s")])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            await channel.channel_ready()
            await server.stop(grace=1)
            with anyio.fail_after(LIVENESS):
                assert await observe(channel, READY, IDLE) == [IDLE]
    finally:
        await server.stop(grace=0)
