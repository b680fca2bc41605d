"""Failover under steady load: a server killed (SIGKILL) or stopped gracefully, then back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw.policy.backoff import BackoffConfig
from tests.echo_service import make_echo_service

from .load import run_load

ROOT = Path(__file__).resolve().parents[2]
FAST_BACKOFF = BackoffConfig(initial=0.05, multiplier=1.6, jitter=0.2, max_delay=0.3)


class ServerProcess:
    def __init__(self, generated_root: Path, server_id: str, port: int = 0) -> None:
        self.generated_root, self.server_id, self.port = generated_root, server_id, port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.echo_server_main",
            str(self.generated_root), "protobuf", self.server_id, str(self.port),
            stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
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


async def test_killed_server_fails_only_its_in_flight_calls_and_rejoins_after_restart(
    echo_pb: ModuleType, processes: list[ServerProcess]
) -> None:
    target = "static:///" + ",".join(f"127.0.0.1:{p.port}" for p in processes)
    async with rpcfw.Channel(
        target, balancer="round_robin", connect_backoff=FAST_BACKOFF
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=10)
        await asyncio.sleep(0.3)
        stop = asyncio.Event()
        workers = 6
        load = asyncio.ensure_future(
            run_load(
                echo_pb, stub, workers=workers, calls=100_000, seconds=20, delay_ms=50, stop=stop
            )
        )
        await asyncio.sleep(1.0)
        processes[1].kill()
        await asyncio.sleep(1.5)
        stop.set()
        during = await load
        # only calls in flight on the killed server fail (at most one per worker), as UNAVAILABLE
        assert set(during.failures) <= {"UNAVAILABLE"}
        assert during.failures["UNAVAILABLE"] <= workers
        assert during.per_server["p0"] > 20 and during.per_server["p2"] > 20

        await processes[1].start()  # same port: it rejoins without a client restart
        await asyncio.sleep(1.0)
        after = await run_load(echo_pb, stub, workers=1, calls=90, seconds=20)
        assert not after.failures
        assert after.per_server["p1"] > 0


async def test_graceful_stop_of_one_of_three_under_load_fails_no_call(echo_pb: ModuleType) -> None:
    servers = [rpcfw.Server([make_echo_service(echo_pb, f"s{i}")]) for i in range(3)]
    for server in servers:
        await server.start()
    target = "static:///" + ",".join(s.address for s in servers)
    try:
        async with rpcfw.Channel(
            target, balancer="round_robin", connect_backoff=FAST_BACKOFF
        ) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
            await asyncio.sleep(0.2)
            stop = asyncio.Event()
            load = asyncio.ensure_future(
                run_load(
                    echo_pb, stub, workers=8, calls=100_000, seconds=20, delay_ms=20, stop=stop
                )
            )
            await asyncio.sleep(0.5)
            await servers[1].stop(grace=5)
            await asyncio.sleep(0.8)
            stop.set()
            result: Any = await load
        assert not result.failures, result.failures
        assert (
            result.per_server["s1"] > 0
            and result.per_server["s0"] > 0
            and result.per_server["s2"] > 0
        )
    finally:
        for server in servers:
            await server.stop(grace=1)
