"""Discovery through a real etcd that is wiped or hangs, with servers registered under short
leases and a channel under load. What is asserted is what the clients saw (every endpoint set
the channel was given, every call's outcome) and the order of the registrars' and resolver's
state changes, not wall-clock times.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw.balancer.base import BalancerHelper
from rpcfw.balancer.round_robin import RoundRobinBalancer
from rpcfw.endpoint import Endpoint
from rpcfw.etcd import Etcd3PyClient
from rpcfw.registry import LeaseRegistrar, etcd_registrar
from rpcfw.resolver import register_resolver
from rpcfw.resolver.base import Resolver, ResolverListener
from rpcfw.resolver.service_registry import ServiceRegistryResolver
from rpcfw.resolver.target import Target
from tests.echo_service import make_echo_service, wait_until
from tests.etcd_server import EtcdProcess
from tests.integration.load import run_load

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "echo.v1.Echo"
LIVENESS = 20.0  # bound on waits that must not hang (not a timing assertion)


class Published:
    """Every endpoint set the channel's balancer was given, in order (as sets of ports)."""

    def __init__(self) -> None:
        self.sets: list[set[int]] = []

    def factory(self, helper: BalancerHelper) -> RoundRobinBalancer:
        published = self

        class Recording(RoundRobinBalancer):
            def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
                published.sets.append({e.port for e in endpoints})
                super().update_endpoints(endpoints)

        return Recording(helper)

    def since_full(self, ports: set[int]) -> list[set[int]]:
        """The sets from the first one that had all of ``ports`` on."""
        for index, endpoints in enumerate(self.sets):
            if ports <= endpoints:
                return self.sets[index:]
        raise AssertionError(f"{sorted(ports)} never all published: {self.sets}")


@pytest.fixture
async def servers() -> AsyncIterator[list[rpcfw.Server]]:
    started: list[rpcfw.Server] = []
    yield started
    for server in started:
        await server.stop(grace=0)


SERVED: dict[int, Any] = {}  # port -> the Echo service object (it counts its calls)


async def start_registered(
    started: list[rpcfw.Server], echo_pb: ModuleType, name: str, etcd: EtcdProcess
) -> rpcfw.Server:
    """A server registered with a 2 s lease (keepalive every 0.67 s)."""
    service = make_echo_service(echo_pb, name)
    server = rpcfw.Server([service], registry=etcd_registrar(etcd.endpoint, ttl=2, timeout=0.5))
    await server.start()
    started.append(server)
    assert server.port is not None
    SERVED[server.port] = service
    return server


def calls_served(servers: Sequence[rpcfw.Server]) -> int:
    return sum(SERVED[s.port].calls for s in servers if s.port is not None)


def registrar_of(server: rpcfw.Server) -> LeaseRegistrar:
    registrar = server.registry
    assert isinstance(registrar, LeaseRegistrar)
    return registrar


def resolver_of(channel: rpcfw.Channel) -> ServiceRegistryResolver:
    resolver = channel._core.resolver
    assert isinstance(resolver, ServiceRegistryResolver)
    return resolver


def after_lease_lost(history: list[str]) -> list[str]:
    """What a registrar did after it last learned that its lease was gone."""
    index = len(history) - 1 - history[::-1].index("lease_lost")
    return history[index + 1 :]


async def test_etcd_wiped_under_load_no_healthy_server_leaves_the_channel_and_no_call_fails(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    """Fault: etcd restarts with an empty data dir while 3 servers run and 4 workers call.
    The resolver resyncs to an (almost) empty registry; servers re-register when they learn
    their lease is gone. The channel must keep every server the whole time."""
    trio = [await start_registered(servers, echo_pb, f"s{i}", etcd) for i in range(3)]
    live = {s.port for s in trio if s.port is not None}
    published = Published()
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer=published.factory
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)  # starts it
        await wait_until(lambda: bool(published.sets) and published.sets[-1] == live, LIVENESS)
        stop = asyncio.Event()
        load = asyncio.ensure_future(
            run_load(echo_pb, stub, workers=4, calls=1_000_000, seconds=60, stop=stop, timeout=2)
        )
        try:
            await asyncio.to_thread(etcd.restart, keep_data=False)  # the fault
            # every server learns its lease is gone and registers again
            await wait_until(
                lambda: all(registrar_of(s).stats.get("lease_lost") for s in trio), LIVENESS
            )
            await wait_until(lambda: all(registrar_of(s).state == "registered" for s in trio))
            resolver = resolver_of(channel)
            await wait_until(lambda: resolver.stats.get("resync", 0) >= 1, LIVENESS)
            async with Etcd3PyClient([etcd.endpoint], timeout=0.5) as client:
                keys = await client.get_prefix(f"/rpcfw/services/{SERVICE}/")
            assert len(keys.items) == 3  # all three are registered again
            # and the window is over: the channel is told exactly the registry again
            await wait_until(lambda: not resolver.settling.holding, LIVENESS)
        finally:
            stop.set()
            result = await load
    assert not result.failures, result.failures
    assert set(result.per_server) == {"s0", "s1", "s2"}
    for endpoints in published.since_full(live):
        assert live <= endpoints, published.sets  # no healthy server ever left the channel
    for server in trio:
        # re-registered at once: no failed attempt and no backoff between "lease gone"
        # and "registered" (only a failing call backs off)
        assert after_lease_lost(registrar_of(server).history)[:1] == ["registered"]


def hang_detecting_resolver(target: Target, listener: ResolverListener) -> Resolver:
    """etcd:// with short liveness checks (0.5 s idle, 0.5 s per attempt) and a 3 s window."""
    client = Etcd3PyClient(target.authority.split(","), timeout=0.5, watch_idle=0.5)
    return ServiceRegistryResolver(target, listener, client, settle=3.0, close_client=client.close)


async def test_etcd_hung_is_detected_logged_once_and_discovery_recovers_after_it_resumes(
    echo_pb: ModuleType,
    etcd: EtcdProcess,
    servers: list[rpcfw.Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: etcd is stopped with SIGSTOP (process alive, sockets open, nothing answers)
    for longer than the servers' lease TTL, while 2 servers serve load; a third server starts
    during the hang. The resolver must say the registry is unreachable (once), calls keep
    succeeding on the known servers, and after SIGCONT the third server is discovered
    without either running server ever leaving the channel."""
    register_resolver("etcd-hang", hang_detecting_resolver)
    pair = [await start_registered(servers, echo_pb, f"s{i}", etcd) for i in range(2)]
    live = {s.port for s in pair if s.port is not None}
    published = Published()
    caplog.set_level(logging.INFO, logger="rpcfw.resolver")
    async with rpcfw.Channel(
        f"etcd-hang://{etcd.endpoint}/{SERVICE}", balancer=published.factory
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)  # starts it
        await wait_until(lambda: bool(published.sets) and published.sets[-1] == live, LIVENESS)
        resolver = resolver_of(channel)
        stop = asyncio.Event()
        load = asyncio.ensure_future(
            run_load(echo_pb, stub, workers=4, calls=1_000_000, seconds=60, stop=stop, timeout=2)
        )
        try:
            etcd.pause()  # the fault
            try:
                await wait_until(lambda: resolver.state == "unreachable", LIVENESS)
                third = await start_registered(servers, echo_pb, "s2", etcd)  # cannot register
                # the servers' registrars see it too; stay hung past the 2 s lease TTL
                await wait_until(
                    lambda: all(registrar_of(s).state == "unreachable" for s in [*pair, third]),
                    LIVENESS,
                )
                # calls go on meanwhile, on the servers the channel knew
                served = calls_served(pair)
                await wait_until(lambda: calls_served(pair) > served + 50, LIVENESS)
            finally:
                etcd.resume()
            everyone = {*live, third.port}
            await wait_until(
                lambda: bool(published.sets) and published.sets[-1] == everyone, LIVENESS
            )
            await wait_until(lambda: resolver.state == "watching", LIVENESS)
        finally:
            stop.set()
            result = await load
    assert not result.failures, result.failures
    for endpoints in published.since_full(live):
        assert live <= endpoints, published.sets  # neither running server ever left
    unreachable = [
        r
        for r in caplog.records
        if r.name == "rpcfw.resolver" and "registry unreachable" in r.getMessage()
    ]
    assert len(unreachable) == 1  # once for the whole hang, not once per retry
    assert resolver.stats["unreachable"] == 1 and resolver.stats["failed_attempts"] >= 1
    assert resolver.history.index("unreachable") < len(resolver.history) - 1  # and it ended


async def test_sigterm_deregisters_from_etcd_at_once_then_drains_the_call_in_flight(
    echo_pb: ModuleType, generated_root: Path, etcd: EtcdProcess
) -> None:
    """Fault: SIGTERM to a server process (``Server.run()``) registered in etcd, with a call
    in flight. Its key leaves etcd while the call still runs (deregistration first, not a
    lease expiry: its keepalive ran until then), the call ends OK, the process exits 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.echo_server_main",
        str(generated_root), "protobuf", "p1", "0", etcd.endpoint, "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), LIVENESS)).decode()
        port = int(line.split()[1])
        prefix = f"/rpcfw/services/{SERVICE}/"
        async with Etcd3PyClient([etcd.endpoint], timeout=0.5) as client:
            snapshot = await client.get_prefix(prefix)
            assert [kv.key.rsplit("/", 1)[1] for kv in snapshot.items] == [f"127.0.0.1:{port}"]
            async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
                call = asyncio.ensure_future(
                    echo_pb.EchoStub(channel).unary(
                        echo_pb.EchoRequest(message="slow", delay_ms=3000), timeout=LIVENESS
                    )
                )
                await wait_until(lambda: channel.state == "READY", LIVENESS)
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(LIVENESS):
                    async for batch in client.watch_prefix(prefix, snapshot.revision + 1):
                        if any(e.type.value == "DELETE" for e in batch):
                            break
                assert not call.done()  # the key left while the call still ran
                reply = await call
        assert reply.message == "slow"
        assert await asyncio.wait_for(proc.wait(), LIVENESS) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
