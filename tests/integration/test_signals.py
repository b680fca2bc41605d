"""Server.run(): SIGTERM/SIGINT drain a server (deregister, GOAWAY, calls in flight finish), a
second signal cuts the drain short, cancelling run() stops at once; no handler is left behind.

Each test names the fault it injects. Waits end on events, log lines or states; LIVENESS only
bounds them so that a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

import rpcfw
from rpcfw import Status
from rpcfw.registry import DEFAULT_PREFIX, LeaseRegistrar, LocalStore, service_prefix
from tests.echo_service import make_echo_service, wait_until

ROOT = Path(__file__).resolve().parents[2]
LIVENESS = 10.0  # liveness bound only (every wait ends on an event long before it)
HANDLED = (signal.SIGTERM, signal.SIGINT)


class ServerProcess:
    """``tests.integration.echo_server_main`` (``Server.run()``) in its own process."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.log: list[str] = []

    @classmethod
    async def spawn(cls, generated_root: Path, grace: float) -> ServerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.echo_server_main",
            str(generated_root), "protobuf", "p1", "0", "", str(grace),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("PORT "), line
        return cls(proc, int(line.split()[1]))

    async def logged(self, text: str) -> str:
        """Read the server's log (stderr) until a line containing ``text``; return it."""
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode()
            assert line, f"the server exited without logging {text!r}: {self.log}"
            self.log.append(line)
            if text in line:
                return line

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


@pytest.fixture
async def spawned() -> AsyncIterator[list[ServerProcess]]:
    procs: list[ServerProcess] = []
    yield procs
    for proc in procs:
        await proc.close()


async def refused(port: int) -> bool:
    """Whether a new TCP connection to ``port`` is refused."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_signal_to_the_process_drains_the_call_in_flight_refuses_new_connections_exits_0(
    echo_pb: ModuleType,
    generated_root: Path,
    spawned: list[ServerProcess],
    sig: signal.Signals,
) -> None:
    server = await ServerProcess.spawn(generated_root, grace=10)
    spawned.append(server)
    Request = echo_pb.EchoRequest
    async with asyncio.timeout(LIVENESS):  # liveness bound
        async with rpcfw.Channel(f"127.0.0.1:{server.port}") as channel:
            async with echo_pb.EchoStub(channel).bidi() as call:
                await call.send(Request(message="before"))
                assert (await call.recv()).message == "before"  # the handler runs: in flight
                os.kill(server.proc.pid, sig)  # fault: SIGTERM / SIGINT (Ctrl-C)
                line = await server.logged("received: draining")
                assert sig.name in line and "grace 10 s" in line
                line = await server.logged("new connections refused")
                assert "1 calls in flight" in line
                assert await refused(server.port)  # new connections: refused during the drain
                # the call in flight goes on: its handler sleeps, then answers
                await call.send(Request(message="during the drain", delay_ms=100))
                assert (await call.recv()).message == "during the drain"
                await call.done_writing()
                assert await call.recv() is None  # ended with OK
            assert await server.proc.wait() == 0
        assert await refused(server.port)  # and after it


async def test_second_sigterm_during_a_long_drain_stops_at_once_the_call_ends_unavailable(
    echo_pb: ModuleType, generated_root: Path, spawned: list[ServerProcess]
) -> None:
    # grace 60 s and a handler sleeping 120 s: only the second signal can end this within
    # the liveness bound
    server = await ServerProcess.spawn(generated_root, grace=60)
    spawned.append(server)
    Request = echo_pb.EchoRequest
    async with asyncio.timeout(LIVENESS):  # liveness bound
        async with rpcfw.Channel(f"127.0.0.1:{server.port}") as channel:
            async with echo_pb.EchoStub(channel).bidi() as call:
                await call.send(Request(message="before"))
                assert (await call.recv()).message == "before"
                await call.send(Request(message="slow", delay_ms=120_000))
                os.kill(server.proc.pid, signal.SIGTERM)  # fault: SIGTERM ...
                assert "grace 60 s" in await server.logged("received: draining")
                os.kill(server.proc.pid, signal.SIGTERM)  # ... and SIGTERM again, mid-drain
                await server.logged("SIGTERM received again: stopping now")
                with pytest.raises(rpcfw.RpcError) as info:
                    await call.recv()
                assert info.value.status is Status.UNAVAILABLE
            assert await server.proc.wait() == 0
            assert server.proc.stderr is not None
            rest = (await server.proc.stderr.read()).decode()
    assert "cancelling 1 calls still running" in "".join(server.log) + rest


async def test_cancelling_run_stops_at_once_reraises_and_removes_its_signal_handlers(
    echo_pb: ModuleType,
) -> None:
    def on_sigint(signum: int, frame: object) -> None:  # as asyncio.run() installs one
        raise AssertionError("not called")

    previous_sigint = signal.signal(signal.SIGINT, on_sigint)
    handlers_before = {sig: signal.getsignal(sig) for sig in HANDLED}
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    started = asyncio.Event()
    running = asyncio.ensure_future(server.run(on_started=lambda _: started.set()))
    try:
        await run_and_cancel(echo_pb, server, started, running, handlers_before)
        # run()'s handlers removed; the Python-level ones found before (SIGINT's own) put back
        assert {sig: signal.getsignal(sig) for sig in HANDLED} == handlers_before
    finally:
        signal.signal(signal.SIGINT, previous_sigint)  # pytest-asyncio's Runner handler
        running.cancel()
        await asyncio.wait([running])


async def run_and_cancel(
    echo_pb: ModuleType,
    server: rpcfw.Server,
    started: asyncio.Event,
    running: asyncio.Future[None],
    handlers_before: dict[signal.Signals, object],
) -> None:
    async with asyncio.timeout(LIVENESS):  # liveness bound
        await started.wait()
        assert server.port is not None
        assert all(signal.getsignal(sig) is not handlers_before[sig] for sig in HANDLED)
        async with rpcfw.Channel(server.address) as channel:
            call = asyncio.ensure_future(
                echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(delay_ms=60_000))
            )
            await wait_until(lambda: server.running_calls == 1)  # the call is in flight
            running.cancel()  # fault: the caller cancels the task running run()
            with pytest.raises(asyncio.CancelledError):
                await running
            assert running.cancelled()  # re-raised, not swallowed
            with pytest.raises(rpcfw.RpcError) as info:  # grace 0: ended at once
                await call
            assert info.value.status is Status.UNAVAILABLE
        assert await refused(server.port)


async def test_sigterm_deregisters_from_the_embedded_registry_while_the_call_in_flight_is_served(
    echo_pb: ModuleType,
) -> None:
    store = LocalStore()
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")], registry=LeaseRegistrar(store))
    prefix = service_prefix(DEFAULT_PREFIX, "echo.v1.Echo")
    handler_before = signal.getsignal(signal.SIGTERM)
    started = asyncio.Event()
    running = asyncio.ensure_future(
        server.run(signals=(signal.SIGTERM,), on_started=lambda _: started.set())
    )
    Request = echo_pb.EchoRequest
    try:
        async with asyncio.timeout(LIVENESS):  # liveness bound
            await started.wait()
            listed = await store.get_prefix(prefix)
            assert [kv.key for kv in listed.items] == [f"{prefix}{server.address}"]
            async with (
                rpcfw.Channel(server.address) as channel,
                echo_pb.EchoStub(channel).bidi() as call,
            ):
                await call.send(Request(message="before"))
                assert (await call.recv()).message == "before"  # in flight
                os.kill(os.getpid(), signal.SIGTERM)  # fault: SIGTERM (run() catches it)
                watch = store.watch_prefix(prefix, listed.revision + 1)
                async with contextlib.aclosing(watch):
                    events = await anext(watch)
                assert [(e.type.name, e.key) for e in events] == [
                    ("DELETE", f"{prefix}{server.address}")
                ]
                assert (await store.get_prefix(prefix)).items == []
                # deregistered, and still serving the call in flight
                assert not running.done()
                await call.send(Request(message="after deregistration"))
                assert (await call.recv()).message == "after deregistration"
                await call.done_writing()
                assert await call.recv() is None
            await running  # the drain ends once the call ended: run() returns
        assert await refused(server.port or 0)
        assert signal.getsignal(signal.SIGTERM) is handler_before
    finally:
        running.cancel()
        await asyncio.wait([running])
