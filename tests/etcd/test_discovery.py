"""Registration and discovery through a real etcd (never mocked): servers register with leases,
channels on etcd:// balance over what the watch says, through etcd faults.

Waits are for states (the channel's subchannels, the resolver's failure count, calls answered
per server), bounded by ``LIVENESS``, a liveness bound; a lease's TTL is behaviour under test."""

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
from rpcfw.registry import LeaseRegistrar, etcd_registrar
from tests.echo_service import LIVENESS, make_echo_service, wait_until
from tests.etcd_server import EtcdProcess
from tests.integration.load import LoadResult, run_load

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "echo.v1.Echo"


def registered(echo_pb: ModuleType, name: str, endpoints: str, ttl: int = 10) -> rpcfw.Server:
    return rpcfw.Server(
        [make_echo_service(echo_pb, name)], registry=etcd_registrar(endpoints, ttl=ttl, timeout=0.5)
    )


@pytest.fixture
async def servers() -> AsyncIterator[list[rpcfw.Server]]:
    started: list[rpcfw.Server] = []
    yield started
    for server in started:
        await server.stop(grace=1)


async def start(started: list[rpcfw.Server], server: rpcfw.Server) -> rpcfw.Server:
    await server.start()
    started.append(server)
    return server


def ids(channel: rpcfw.Channel) -> set[int]:
    return {s.endpoint.port for s in channel._core.subchannels}


def ready(channel: rpcfw.Channel) -> set[int]:
    return {s.endpoint.port for s in channel._core.subchannels if s.state.value == "READY"}


def watch_failures(channel: rpcfw.Channel) -> int:
    """How often the channel's registry resolver saw its etcd watch fail."""
    resolver: Any = channel._core.resolver
    return int(resolver.stats.get("failed_attempts", 0))


def progressed(result: LoadResult, since: LoadResult, servers: list[str], calls: int) -> bool:
    """Each of ``servers`` answered at least ``calls`` more calls than in ``since``."""
    return all(result.per_server[s] - since.per_server[s] >= calls for s in servers)


async def test_register_and_graceful_deregister_reach_the_channel(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    a = await start(servers, registered(echo_pb, "a", etcd.endpoint))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        assert (
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        ).server_id == "a"
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: b.port in ids(channel))
        await a.stop(grace=LIVENESS)
        await wait_until(lambda: ids(channel) == {b.port})
        result = await run_load(echo_pb, stub, workers=1, calls=10)
        assert result.per_server == {"b": 10}


async def test_server_killed_with_sigkill_leaves_after_its_lease_ttl_and_calls_go_elsewhere(
    echo_pb: ModuleType, generated_root: Path, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    await start(servers, registered(echo_pb, "in-process", etcd.endpoint))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.echo_server_main",
        str(generated_root), "protobuf", "doomed", "0", etcd.endpoint,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int((await asyncio.wait_for(proc.stdout.readline(), 30)).split()[1])
        async with rpcfw.Channel(
            f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
        ) as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
            await wait_until(lambda: port in ids(channel))
            os.kill(proc.pid, signal.SIGKILL)  # fault: no deregistration, no GOAWAY
            result = await run_load(echo_pb, stub, workers=4, calls=200, seconds=10)
            assert set(result.failures) <= {"UNAVAILABLE"} and result.failures["UNAVAILABLE"] <= 4
            assert result.per_server["in-process"] >= 196
            await wait_until(lambda: port not in ids(channel))  # after the lease's TTL (2 s)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_etcd_killed_and_restarted_with_data_watch_resumes_without_missing_events(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    a = await start(servers, registered(echo_pb, "a", etcd.endpoint))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        etcd.kill()  # fault: etcd dies; the channel's watch breaks
        await wait_until(lambda: watch_failures(channel) >= 1)  # ... and the resolver knows
        await asyncio.to_thread(etcd.restart, keep_data=True)
        # a change lands before the channel's watch reconnects (it is in backoff)
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: ids(channel) == {a.port, b.port})
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar)
        await wait_until(lambda: registrar.lease is not None)  # a is still there


async def test_etcd_restarted_without_its_data_servers_re_register_by_themselves(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    a = await start(servers, registered(echo_pb, "a", etcd.endpoint, ttl=2))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar)
        old_lease = registrar.lease
        etcd.kill()
        etcd.remove_data()  # fault: etcd comes back empty
        await asyncio.to_thread(etcd.restart, keep_data=False)
        await wait_until(lambda: registrar.lease not in (None, old_lease))
        snapshot = await registrar.client.get_prefix(f"/rpcfw/services/{SERVICE}/")
        assert [kv.key.rsplit("/", 1)[1] for kv in snapshot.items] == [f"127.0.0.1:{a.port}"]
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: ids(channel) == {a.port, b.port})


async def test_etcd_down_clients_keep_calling_the_known_endpoints(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    for name in ("a", "b"):
        await start(servers, registered(echo_pb, name, etcd.endpoint))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: len(ids(channel)) == 2)
        etcd.kill()  # fault: the registry is gone
        await wait_until(lambda: watch_failures(channel) >= 1)  # the resolver saw it go
        result = await run_load(echo_pb, stub, workers=2, calls=100)
        assert not result.failures and set(result.per_server) == {"a", "b"}


async def test_three_member_cluster_with_one_member_killed_keeps_registration_and_discovery(
    echo_pb: ModuleType, etcd_cluster: list[EtcdProcess], servers: list[rpcfw.Server]
) -> None:
    endpoints = ",".join(m.endpoint for m in etcd_cluster)
    a = await start(servers, registered(echo_pb, "a", endpoints))
    async with rpcfw.Channel(f"etcd://{endpoints}/{SERVICE}", balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        etcd_cluster[0].kill()  # fault: the first listed member dies
        b = await start(servers, registered(echo_pb, "b", endpoints))
        await wait_until(lambda: ready(channel) == {a.port, b.port})
        result = await run_load(echo_pb, stub, workers=1, calls=20)
        assert result.per_server == {"a": 10, "b": 10}


async def test_end_to_end_join_and_graceful_leave_under_load_fail_no_call(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    trio = [await start(servers, registered(echo_pb, f"s{i}", etcd.endpoint)) for i in range(3)]
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: len(ids(channel)) == 3)
        stop, result, none = asyncio.Event(), LoadResult(), LoadResult()
        load: Any = asyncio.ensure_future(
            run_load(
                echo_pb,
                stub,
                workers=8,
                calls=1_000_000,
                seconds=6 * LIVENESS,
                delay_ms=10,
                stop=stop,
                result=result,
            )
        )
        await wait_until(lambda: progressed(result, none, ["s0", "s1", "s2"], 5))
        await start(servers, registered(echo_pb, "s3", etcd.endpoint))
        await wait_until(lambda: progressed(result, none, ["s3"], 5))  # it joined
        await trio[0].stop(grace=LIVENESS)
        after_stop = LoadResult(result.per_server.copy(), result.failures.copy())
        await wait_until(lambda: progressed(result, after_stop, ["s1", "s2", "s3"], 10))
        stop.set()
        await load
    assert not result.failures, result.failures
