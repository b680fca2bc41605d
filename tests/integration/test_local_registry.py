"""Discovery through the embedded registry (local:///service): the same registrar and resolver
code that etcd uses, over rpcfw's in-process store with etcd's semantics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import ModuleType

import pytest

import rpcfw
from rpcfw.registry import LeaseRegistrar, LocalStore, default_store, local
from tests.echo_service import make_echo_service, wait_until

from .load import run_load

TARGET = "local:///echo.v1.Echo"


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[LocalStore]:
    local._default = None
    yield default_store()
    local._default = None


def server(echo_pb: ModuleType, name: str, ttl: int = 10) -> rpcfw.Server:
    return rpcfw.Server(
        [make_echo_service(echo_pb, name)], registry=LeaseRegistrar(default_store(), ttl=ttl)
    )


async def test_register_and_graceful_deregister_are_seen_within_one_second(
    echo_pb: ModuleType,
) -> None:
    a, b = server(echo_pb, "a"), server(echo_pb, "b")
    await a.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        assert (
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        ).server_id == "a"
        await b.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        seen: set[str] = set()
        while "b" not in seen and loop.time() - t0 < 1.0:
            seen.add((await stub.unary(echo_pb.EchoRequest())).server_id)
        assert "b" in seen, "registration not seen within 1 s"
        await a.stop(grace=5)
        t0 = loop.time()
        await wait_until(lambda: len(channel._core.subchannels) == 1, within=1.0)
        assert loop.time() - t0 < 1.0
        result = await run_load(echo_pb, stub, workers=1, calls=20)
        assert result.per_server == {"b": 20}
    await b.stop(grace=1)


async def test_fourth_server_joins_and_one_stops_under_load_with_zero_failed_calls(
    echo_pb: ModuleType,
) -> None:
    servers = [server(echo_pb, f"s{i}") for i in range(3)]
    for s in servers:
        await s.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        stop = asyncio.Event()
        load = asyncio.ensure_future(
            run_load(echo_pb, stub, workers=8, calls=100_000, seconds=20, delay_ms=10, stop=stop)
        )
        await asyncio.sleep(0.4)
        fourth = server(echo_pb, "s3")
        await fourth.start()
        await asyncio.sleep(0.4)
        await servers[0].stop(grace=5)
        await asyncio.sleep(0.4)
        stop.set()
        result = await load
    assert not result.failures, result.failures
    assert result.per_server["s3"] > 0 and result.per_server["s0"] > 0
    for s in [*servers[1:], fourth]:
        await s.stop(grace=1)


async def test_server_that_vanishes_without_deregistering_leaves_after_its_lease_ttl(
    echo_pb: ModuleType, fresh_store: LocalStore
) -> None:
    a = server(echo_pb, "a", ttl=2)
    await a.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=5)
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar) and registrar._task is not None
        registrar._task.cancel()  # fault: the process froze; keepalives stop, no revoke
        a.registry = None
        await wait_until(lambda: not fresh_store._data, within=4.0)
        await wait_until(lambda: len(channel._core.subchannels) == 0, within=1.0)
    await a.stop(grace=1)


async def test_lost_lease_is_re_registered_by_the_server_itself(
    echo_pb: ModuleType, fresh_store: LocalStore
) -> None:
    a = server(echo_pb, "a")
    await a.start()
    registrar = a.registry
    assert isinstance(registrar, LeaseRegistrar) and registrar.lease is not None
    old = registrar.lease
    await fresh_store.revoke_lease(old)  # fault: the registry forgot us (etcd lost its data)
    assert not fresh_store._data
    await wait_until(lambda: registrar.lease not in (None, old) and fresh_store._data, within=3.0)
    async with rpcfw.Channel(TARGET) as channel:
        reply = await echo_pb.EchoStub(channel).unary(
            echo_pb.EchoRequest(), wait_for_ready=True, timeout=5
        )
    assert reply.server_id == "a"
    await a.stop(grace=1)


def test_target_without_a_service_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="names no service"):
        rpcfw.Channel("local:///")
