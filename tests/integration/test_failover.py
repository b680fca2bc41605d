"""Failover under steady load: a server killed (SIGKILL) or stopped gracefully, then back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

import rpcfw
from rpcfw.balancer.base import ConnectivityState
from rpcfw.policy.backoff import BackoffConfig
from tests.echo_service import LIVENESS, make_echo_service, wait_until

from .load import LoadResult, run_load

ROOT = Path(__file__).resolve().parents[2]
FAST_BACKOFF = BackoffConfig(initial=0.05, multiplier=1.6, jitter=0.2, max_delay=0.3)


class ServerProcess:
    def __init__(self, generated_root: Path, server_id: str, port: int = 0) -> None:
        self.generated_root, self.server_id, self.port = generated_root, server_id, port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.echo_server_main",
            str(self.generated_root),
            "protobuf",
            self.server_id,
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)  # liveness bound only
        self.port = int(line.split()[1])

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        if self.proc is not None:
            await self.proc.wait()


@pytest.fixture
async def processes(generated_root: Path) -> AsyncIterator[list[ServerProcess]]:
    procs = [ServerProcess(generated_root, f"p{i}") for i in range(3)]
    await asyncio.gather(*(p.start() for p in procs))
    yield procs
    for p in procs:
        await p.close()


def ready_ports(channel: rpcfw.Channel) -> set[int]:
    """The ports of the channel's READY subchannels."""
    return {
        sc.endpoint.port for sc in channel._core.subchannels if sc.state is ConnectivityState.READY
    }


def progressed(result: LoadResult, since: LoadResult, servers: list[str], calls: int) -> bool:
    """Each of ``servers`` answered at least ``calls`` more calls than in ``since``."""
    return all(result.per_server[s] - since.per_server[s] >= calls for s in servers)


def snapshot(result: LoadResult) -> LoadResult:
    return LoadResult(result.per_server.copy(), result.failures.copy())


async def test_killed_server_fails_only_its_in_flight_calls_and_rejoins_after_restart(
    echo_pb: ModuleType, processes: list[ServerProcess]
) -> None:
    """Progress is counted, not timed: the load runs until every server answered, then p1 is
    killed; the load goes on until the channel dropped p1 and p0 and p2 answered 20 more each."""
    target = "static:///" + ",".join(f"127.0.0.1:{p.port}" for p in processes)
    async with rpcfw.Channel(
        target, balancer="round_robin", connect_backoff=FAST_BACKOFF
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == {p.port for p in processes})
        stop, during, workers = asyncio.Event(), LoadResult(), 6
        load = asyncio.ensure_future(
            run_load(
                echo_pb,
                stub,
                workers=workers,
                calls=1_000_000,
                seconds=6 * LIVENESS,
                delay_ms=50,
                stop=stop,
                result=during,
            )
        )
        await wait_until(lambda: progressed(during, LoadResult(), ["p0", "p1", "p2"], 5))
        processes[1].kill()
        await wait_until(lambda: processes[1].port not in ready_ports(channel))
        after_kill = snapshot(during)
        await wait_until(lambda: progressed(during, after_kill, ["p0", "p2"], 20))
        stop.set()
        await load
        # only calls in flight on the killed server fail (at most one per worker), as UNAVAILABLE
        assert set(during.failures) <= {"UNAVAILABLE"}
        assert during.failures["UNAVAILABLE"] <= workers

        await processes[1].start()  # same port: it rejoins without a client restart
        stop, after = asyncio.Event(), LoadResult()
        load = asyncio.ensure_future(
            run_load(
                echo_pb,
                stub,
                workers=1,
                calls=1_000_000,
                seconds=6 * LIVENESS,
                stop=stop,
                result=after,
            )
        )
        await wait_until(lambda: after.per_server["p1"] > 0)  # the next calls reconnect it
        stop.set()
        await load
        assert not after.failures


async def test_graceful_stop_of_one_of_three_under_load_fails_no_call(echo_pb: ModuleType) -> None:
    """The load runs until every server answered; s1 then stops gracefully (a grace far longer
    than its calls: they all finish); the load goes on until s0 and s2 answered 20 more each
    after the stop. No call fails."""
    servers = [rpcfw.Server([make_echo_service(echo_pb, f"s{i}")]) for i in range(3)]
    for server in servers:
        await server.start()
    target = "static:///" + ",".join(s.address for s in servers)
    try:
        async with rpcfw.Channel(
            target, balancer="round_robin", connect_backoff=FAST_BACKOFF
        ) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
            await wait_until(lambda: ready_ports(channel) == {s.port for s in servers})
            stop, result = asyncio.Event(), LoadResult()
            load = asyncio.ensure_future(
                run_load(
                    echo_pb,
                    stub,
                    workers=8,
                    calls=1_000_000,
                    seconds=6 * LIVENESS,
                    delay_ms=20,
                    stop=stop,
                    result=result,
                )
            )
            await wait_until(lambda: progressed(result, LoadResult(), ["s0", "s1", "s2"], 5))
            await servers[1].stop(grace=LIVENESS)
            after_stop = snapshot(result)
            await wait_until(lambda: progressed(result, after_stop, ["s0", "s2"], 20))
            stop.set()
            await load
        assert not result.failures, result.failures
    finally:
        for server in servers:
            await server.stop(grace=1)
