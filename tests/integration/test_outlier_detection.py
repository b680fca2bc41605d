"""Outlier detection (gRFC A50) over real servers: what each call reports to the balancer, and a
hung server (SIGSTOP: process alive, socket open, no answers) taken out of rotation under load,
then re-admitted after SIGCONT."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw.balancer.base import BalancerHelper, PickResult, SubchannelLike
from rpcfw.balancer.round_robin import RoundRobinBalancer
from rpcfw.policy.backoff import BackoffConfig
from tests.echo_service import make_echo_service, wait_until

ROOT = Path(__file__).resolve().parents[2]
FAST_BACKOFF = BackoffConfig(initial=0.05, multiplier=1.6, jitter=0.2, max_delay=0.3)


# -- what ClientCall.close reports --------------------------------------------------------------
class RecordingRoundRobin(RoundRobinBalancer):
    """Round robin that records every ``on_done(latency, connection_failure, failure)``."""

    def __init__(self, helper: BalancerHelper) -> None:
        super().__init__(helper)
        self.outcomes: list[tuple[float, bool, bool]] = []

    def pick_result(self, subchannel: SubchannelLike) -> PickResult:
        inner = super().pick_result(subchannel).on_done
        assert inner is not None

        def on_done(latency: float, connection_failure: bool, failure: bool) -> None:
            if latency > 0.0:
                self.outcomes.append((latency, connection_failure, failure))
            inner(latency, connection_failure, failure)

        return PickResult(subchannel, on_done)


@pytest.fixture
async def echo_server_pb(echo_pb: ModuleType) -> AsyncIterator[rpcfw.Server]:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=0.5)


async def test_calls_report_deadline_exceeded_and_unavailable_as_endpoint_failures(
    echo_pb: ModuleType, echo_server_pb: rpcfw.Server
) -> None:
    made: list[RecordingRoundRobin] = []

    def factory(helper: BalancerHelper) -> RecordingRoundRobin:
        made.append(RecordingRoundRobin(helper))
        return made[-1]

    Request = echo_pb.EchoRequest
    async with rpcfw.Channel(echo_server_pb.address, balancer=factory) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(Request(), wait_for_ready=True, timeout=5)  # ok
        (balancer,) = made
        expected = [(False, False)]

        async def fails(status: rpcfw.Status, call: Any) -> None:
            with pytest.raises(rpcfw.RpcError) as info:
                await call
            assert info.value.status is status

        await fails(rpcfw.Status.NOT_FOUND, stub.unary(Request(message="abort:5:no")))
        expected.append((False, False))  # the server answered
        await fails(rpcfw.Status.UNAVAILABLE, stub.unary(Request(message="abort:14:busy")))
        expected.append((False, True))
        await fails(rpcfw.Status.DEADLINE_EXCEEDED, stub.unary(Request(delay_ms=2000), timeout=0.1))
        expected.append((False, True))

        async def server_stream() -> None:
            async for _ in stub.server_stream(Request(count=2, delay_ms=2000), timeout=0.1):
                pass

        await fails(rpcfw.Status.DEADLINE_EXCEEDED, server_stream())
        expected.append((False, True))
        await fails(
            rpcfw.Status.DEADLINE_EXCEEDED,
            stub.client_stream([Request(delay_ms=2000)], timeout=0.1),
        )
        expected.append((False, True))

        async def bidi() -> None:  # BidiStream closes its call without the error
            async with stub.bidi(timeout=0.1) as stream:
                await stream.send(Request(delay_ms=2000))
                await stream.recv()

        await fails(rpcfw.Status.DEADLINE_EXCEEDED, bidi())
        expected.append((False, True))

        async def bidi_ok() -> None:
            async with stub.bidi(timeout=5) as stream:
                await stream.send(Request())
                assert await stream.recv() is not None
                await stream.done_writing()
                assert await stream.recv() is None

        await bidi_ok()
        expected.append((False, False))
        await wait_until(lambda: len(balancer.outcomes) == len(expected))
        assert [(lost, failed) for _, lost, failed in balancer.outcomes] == expected
        deadline_exceeded = balancer.outcomes[3:7]
        assert all(latency >= 0.09 for latency, _, _ in deadline_exceeded), deadline_exceeded


# -- a hung server under load -----------------------------------------------------------------
class HangableServer:
    """An Echo server in its own process that the test can SIGSTOP and SIGCONT."""

    def __init__(self, generated_root: Path, server_id: str) -> None:
        self.generated_root, self.server_id = generated_root, server_id
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.echo_server_main",
            str(self.generated_root), "protobuf", self.server_id, "0",
            stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        self.port = int(line.split()[1])

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.signal(signal.SIGCONT)
                self.proc.kill()
            await self.proc.wait()


@dataclass
class Calls:
    """Every call of the load: (start sequence number, outcome), outcome a server id or a
    status name."""

    done: list[tuple[int, str]] = field(default_factory=list)
    sequence: itertools.count[int] = field(default_factory=itertools.count)
    next_start: int = 0

    def since(self, start: int) -> Counter[str]:
        return Counter(outcome for seq, outcome in self.done if seq >= start)


async def load_worker(mod: ModuleType, stub: Any, calls: Calls, stop: asyncio.Event) -> None:
    while not stop.is_set():
        seq = next(calls.sequence)
        calls.next_start = seq + 1
        try:
            reply = await stub.unary(mod.EchoRequest(delay_ms=2), timeout=1.0)
            calls.done.append((seq, reply.server_id))
        except rpcfw.RpcError as exc:
            calls.done.append((seq, exc.status.name))


OD = rpcfw.OutlierDetectionConfig(
    interval=0.5,
    base_ejection_time=3.0,
    failure_percentage_ejection=rpcfw.FailurePercentageEjection(request_volume=3),
)
WORKERS = 8


async def test_sigstopped_server_is_ejected_under_load_and_readmitted_after_sigcont(
    echo_pb: ModuleType, generated_root: Path
) -> None:
    hung = HangableServer(generated_root, "hung")
    servers = [rpcfw.Server([make_echo_service(echo_pb, f"s{i}")]) for i in range(2)]
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []
    try:
        await hung.start()
        for server in servers:
            await server.start("127.0.0.1", 0)
        target = "static:///" + ",".join([s.address for s in servers] + [f"127.0.0.1:{hung.port}"])
        factory = functools.partial(RoundRobinBalancer, outlier_detection=OD)
        async with rpcfw.Channel(target, balancer=factory, connect_backoff=FAST_BACKOFF) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=10)
            balancer = channel._core.balancer
            assert isinstance(balancer, RoundRobinBalancer)
            detector = balancer.outlier_detector
            assert detector is not None
            key = ("127.0.0.1", hung.port)
            calls = Calls()
            workers = [
                asyncio.create_task(load_worker(echo_pb, stub, calls, stop)) for _ in range(WORKERS)
            ]
            # 1. steady: the three servers share the calls, nothing fails
            await wait_until(lambda: min(calls.since(0)[s] for s in ("s0", "s1", "hung")) >= 30, 10)
            assert set(calls.since(0)) == {"s0", "s1", "hung"}

            # 2. SIGSTOP: calls there time out (1 s) until the detector ejects it
            hang_start, hang_interval = calls.next_start, detector.intervals
            hung.signal(signal.SIGSTOP)
            await wait_until(lambda: detector.is_ejected(key), 15)
            ejected_start = calls.next_start  # every call started from here has the new picker
            intervals_to_eject = detector.intervals - hang_interval
            # the first timeouts come 1 s (2 intervals) after the hang; one more to see them
            assert intervals_to_eject <= 5, intervals_to_eject
            during = calls.since(hang_start)
            assert set(during) <= {"s0", "s1", "DEADLINE_EXCEEDED"}, during
            assert 0 < during["DEADLINE_EXCEEDED"] <= 2 * WORKERS, during

            # 3. ejected: the next 300 calls all go to the two others, none times out
            await wait_until(lambda: sum(calls.since(ejected_start).values()) >= 300, 10)
            window = calls.since(ejected_start)
            assert detector.is_ejected(key) and detector.unejections == 0  # still out
            assert set(window) == {"s0", "s1"}, window

            # 4. SIGCONT: after its ejection time it gets calls again, and they succeed
            resumed_start = calls.next_start
            hung.signal(signal.SIGCONT)
            await wait_until(lambda: calls.since(resumed_start)["hung"] >= 30, 20)
            assert detector.unejections >= 1 and not detector.is_ejected(key)
            after = calls.since(resumed_start)
            # only calls still in flight there when it resumed may have timed out
            assert after["DEADLINE_EXCEEDED"] <= WORKERS, after
            readmitted_start = calls.next_start
            await wait_until(lambda: sum(calls.since(readmitted_start).values()) >= 300, 10)
            final = calls.since(readmitted_start)
            assert set(final) == {"s0", "s1", "hung"}, final
            stop.set()
            await asyncio.gather(*workers)
    finally:
        stop.set()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await hung.close()
        for server in servers:
            await server.stop(grace=0.5)
