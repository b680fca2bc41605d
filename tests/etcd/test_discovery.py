"""Registration and discovery through a real etcd (never mocked): servers register with leases,
channels on etcd:// balance over what the watch says, through etcd faults."""

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
from tests.echo_service import make_echo_service, wait_until
from tests.etcd_server import EtcdProcess
from tests.integration.load import run_load

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


async def test_register_and_graceful_deregister_are_seen_within_one_second(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    a = await start(servers, registered(echo_pb, "a", etcd.endpoint))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        assert (
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        ).server_id == "a"
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: b.port in ids(channel), within=1.0)
        await a.stop(grace=5)
        await wait_until(lambda: ids(channel) == {b.port}, within=1.0)
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
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
            await wait_until(lambda: port in ids(channel), within=3.0)
            os.kill(proc.pid, signal.SIGKILL)  # fault: no deregistration, no GOAWAY
            result = await run_load(echo_pb, stub, workers=4, calls=200, seconds=10)
            assert set(result.failures) <= {"UNAVAILABLE"} and result.failures["UNAVAILABLE"] <= 4
            assert result.per_server["in-process"] >= 196
            await wait_until(lambda: port not in ids(channel), within=4.0)  # lease TTL is 2 s
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
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        etcd.kill()  # fault: etcd dies; the channel's watch breaks
        await asyncio.sleep(0.5)
        await asyncio.to_thread(etcd.restart, keep_data=True)
        # a change lands before the channel's watch reconnects (it is in backoff)
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: ids(channel) == {a.port, b.port}, within=10.0)
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar)
        await wait_until(lambda: registrar.lease is not None, within=5.0)  # a is still there


async def test_etcd_restarted_without_its_data_servers_re_register_by_themselves(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    a = await start(servers, registered(echo_pb, "a", etcd.endpoint, ttl=2))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar)
        old_lease = registrar.lease
        etcd.kill()
        etcd.remove_data()  # fault: etcd comes back empty
        await asyncio.to_thread(etcd.restart, keep_data=False)
        await wait_until(lambda: registrar.lease not in (None, old_lease), within=10.0)
        snapshot = await registrar.client.get_prefix(f"/rpcfw/services/{SERVICE}/")
        assert [kv.key.rsplit("/", 1)[1] for kv in snapshot.items] == [f"127.0.0.1:{a.port}"]
        b = await start(servers, registered(echo_pb, "b", etcd.endpoint))
        await wait_until(lambda: ids(channel) == {a.port, b.port}, within=10.0)


async def test_etcd_down_clients_keep_calling_the_known_endpoints(
    echo_pb: ModuleType, etcd: EtcdProcess, servers: list[rpcfw.Server]
) -> None:
    for name in ("a", "b"):
        await start(servers, registered(echo_pb, name, etcd.endpoint))
    async with rpcfw.Channel(
        f"etcd://{etcd.endpoint}/{SERVICE}", balancer="round_robin"
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        await wait_until(lambda: len(ids(channel)) == 2, within=3.0)
        etcd.kill()  # fault: the registry is gone
        await asyncio.sleep(1.0)
        result = await run_load(echo_pb, stub, workers=2, calls=100)
        assert not result.failures and set(result.per_server) == {"a", "b"}


async def test_three_member_cluster_with_one_member_killed_keeps_registration_and_discovery(
    echo_pb: ModuleType, etcd_cluster: list[EtcdProcess], servers: list[rpcfw.Server]
) -> None:
    endpoints = ",".join(m.endpoint for m in etcd_cluster)
    a = await start(servers, registered(echo_pb, "a", endpoints))
    async with rpcfw.Channel(f"etcd://{endpoints}/{SERVICE}", balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        etcd_cluster[0].kill()  # fault: the first listed member dies
        b = await start(servers, registered(echo_pb, "b", endpoints))
        await wait_until(lambda: ready(channel) == {a.port, b.port}, within=10.0)
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
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        await wait_until(lambda: len(ids(channel)) == 3, within=3.0)
        stop = asyncio.Event()
        load: Any = asyncio.ensure_future(
            run_load(echo_pb, stub, workers=8, calls=100_000, seconds=20, delay_ms=10, stop=stop)
        )
        await asyncio.sleep(0.5)
        fourth = await start(servers, registered(echo_pb, "s3", etcd.endpoint))
        await wait_until(lambda: fourth.port in ids(channel), within=3.0)
        await asyncio.sleep(0.5)
        await trio[0].stop(grace=5)
        await asyncio.sleep(0.5)
        stop.set()
        result = await load
    assert not result.failures, result.failures
    assert result.per_server["s3"] > 0 and result.per_server["s0"] > 0
