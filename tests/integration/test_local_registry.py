"""Discovery through the embedded registry (local:///service): the same registrar and resolver
code that etcd uses, over rpcfw's in-process store with etcd's semantics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import ModuleType

import pytest

import rpcfw
from rpcfw.balancer.base import ConnectivityState
from rpcfw.registry import LeaseRegistrar, LocalStore, default_store, local
from tests.echo_service import LIVENESS, make_echo_service, wait_until

from .load import LoadResult, run_load

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


async def test_register_and_graceful_deregister_reach_the_channel(echo_pb: ModuleType) -> None:
    """b's registration brings calls to b; a's graceful stop (deregister first) takes a out of
    the channel, and the calls after it all go to b. The waits are bounded by ``LIVENESS``, a
    liveness bound: the store pushes each change to the resolver's watch, nothing polls."""
    a, b = server(echo_pb, "a"), server(echo_pb, "b")
    await a.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        assert (
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        ).server_id == "a"
        await b.start()
        await wait_until(lambda: ready_subchannels(channel) == 2)
        seen = {(await stub.unary(echo_pb.EchoRequest())).server_id for _ in range(2)}
        assert seen == {"a", "b"}  # round robin over the two READY servers
        await a.stop(grace=LIVENESS)
        await wait_until(lambda: len(channel._core.subchannels) == 1)
        result = await run_load(echo_pb, stub, workers=1, calls=20)
        assert result.per_server == {"b": 20}
    await b.stop(grace=1)


def ready_subchannels(channel: rpcfw.Channel) -> int:
    return sum(sc.state is ConnectivityState.READY for sc in channel._core.subchannels)


def progressed(result: LoadResult, since: LoadResult, servers: list[str], calls: int) -> bool:
    """Each of ``servers`` answered at least ``calls`` more calls than in ``since``."""
    return all(result.per_server[s] - since.per_server[s] >= calls for s in servers)


async def test_fourth_server_joins_and_one_stops_under_load_with_zero_failed_calls(
    echo_pb: ModuleType,
) -> None:
    """Progress is counted, not timed: the load runs until s0-s2 answered, s3 joins and the load
    goes on until s3 answered too, s0 stops gracefully and the load goes on until s1-s3 answered
    10 more each."""
    servers = [server(echo_pb, f"s{i}") for i in range(3)]
    for s in servers:
        await s.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        stop, result, none = asyncio.Event(), LoadResult(), LoadResult()
        load = asyncio.ensure_future(
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
        fourth = server(echo_pb, "s3")
        await fourth.start()
        await wait_until(lambda: progressed(result, none, ["s3"], 5))
        await servers[0].stop(grace=LIVENESS)
        after_stop = LoadResult(result.per_server.copy(), result.failures.copy())
        await wait_until(lambda: progressed(result, after_stop, ["s1", "s2", "s3"], 10))
        stop.set()
        await load
    assert not result.failures, result.failures
    for s in [*servers[1:], fourth]:
        await s.stop(grace=1)


async def test_server_that_vanishes_without_deregistering_leaves_after_its_lease_ttl(
    echo_pb: ModuleType, fresh_store: LocalStore
) -> None:
    a = server(echo_pb, "a", ttl=2)
    await a.start()
    async with rpcfw.Channel(TARGET, balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        registrar = a.registry
        assert isinstance(registrar, LeaseRegistrar) and registrar._task is not None
        registrar._task.cancel()  # fault: the process froze; keepalives stop, no revoke
        a.registry = None
        # the lease's TTL (2 s) is the behaviour under test: the store expires it; the wait's
        # bound is only a liveness bound
        await wait_until(lambda: not fresh_store._data)
        await wait_until(lambda: len(channel._core.subchannels) == 0)
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
    await wait_until(lambda: registrar.lease not in (None, old) and fresh_store._data)
    async with rpcfw.Channel(TARGET) as channel:
        reply = await echo_pb.EchoStub(channel).unary(
            echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS
        )
    assert reply.server_id == "a"
    await a.stop(grace=1)


def test_target_without_a_service_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="names no service"):
        rpcfw.Channel("local:///")
