"""Balanced channels over real servers on 127.0.0.1: spreading per policy, resolver updates.

Exact per-server counts are asserted only once the channel has exactly the READY subchannels the
count assumes (``ready_ports``), waited for as a state, not for a time; ``LIVENESS`` only bounds
waits so that a hang fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw.balancer.base import ConnectivityState
from rpcfw.endpoint import Endpoint
from rpcfw.policy.backoff import BackoffConfig
from tests.echo_service import LIVENESS, make_echo_service, wait_until

from .load import run_load
from .manual_resolver import publish

FAST_BACKOFF = BackoffConfig(initial=0.05, multiplier=1.6, jitter=0.2, max_delay=0.5)


@pytest.fixture
async def three(echo_pb: ModuleType) -> AsyncIterator[list[rpcfw.Server]]:
    servers = [rpcfw.Server([make_echo_service(echo_pb, f"s{i}")]) for i in range(3)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop(grace=1)


def static_target(servers: list[rpcfw.Server]) -> str:
    return "static:///" + ",".join(s.address for s in servers)


def ready_ports(channel: rpcfw.Channel) -> set[int]:
    """The ports of the channel's READY subchannels (the ones its picker spreads calls over)."""
    return {
        sc.endpoint.port for sc in channel._core.subchannels if sc.state is ConnectivityState.READY
    }


def ports(servers: list[rpcfw.Server]) -> set[int]:
    return {s.port or 0 for s in servers}


async def test_round_robin_spreads_calls_evenly_over_three_servers(
    echo_pb: ModuleType, three: Any
) -> None:
    async with rpcfw.Channel(static_target(three), balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        assert channel.state == "IDLE"  # lazy: no IO before the first call
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == ports(three))  # all three connected
        result = await run_load(echo_pb, stub, workers=1, calls=300)
    assert result.per_server == {"s0": 100, "s1": 100, "s2": 100}


async def test_pick_first_sends_everything_to_the_first_server(
    echo_pb: ModuleType, three: Any
) -> None:
    async with rpcfw.Channel(static_target(three), balancer="pick_first") as channel:
        result = await run_load(echo_pb, echo_pb.EchoStub(channel), calls=60)
    assert result.per_server == {"s0": 60}


async def test_weighted_round_robin_follows_resolver_weights(
    echo_pb: ModuleType, three: Any
) -> None:
    endpoints = [
        Endpoint("127.0.0.1", s.port or 0, {"weight": w})
        for s, w in zip(three, (1, 2, 5), strict=True)
    ]
    publish("weighted", endpoints)
    async with rpcfw.Channel("manual://weighted", balancer="weighted_round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == ports(three))
        result = await run_load(echo_pb, stub, workers=1, calls=800)
    assert result.per_server == {"s0": 100, "s1": 200, "s2": 500}


async def test_p2c_avoids_a_slow_server(echo_pb: ModuleType) -> None:
    class Slow:
        pass

    services = [make_echo_service(echo_pb, f"s{i}") for i in range(3)]
    original = services[2].unary

    async def slow_unary(request: Any, context: rpcfw.CallContext) -> Any:
        await asyncio.sleep(0.02)  # the slowness under test: p2c sees it as calls in flight
        return await original(request, context)

    services[2].unary = slow_unary
    servers = [rpcfw.Server([s]) for s in services]
    for server in servers:
        await server.start()
    try:
        async with rpcfw.Channel(static_target(servers), balancer="p2c") as channel:
            stub = echo_pb.EchoStub(channel)
            await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
            await wait_until(lambda: ready_ports(channel) == ports(servers))
            result = await run_load(echo_pb, stub, workers=4, calls=600)
        assert not result.failures
        assert result.per_server["s2"] < 0.10 * 600, result.per_server
    finally:
        for server in servers:
            await server.stop(grace=1)


async def test_ring_hash_keeps_a_key_on_one_server(echo_pb: ModuleType, three: Any) -> None:
    async with rpcfw.Channel(static_target(three), balancer="ring_hash") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == ports(three))
        homes: dict[str, set[str]] = {}
        for i in range(40):
            key = f"user-{i}"
            for _ in range(3):
                reply = await stub.unary(echo_pb.EchoRequest(), hash_key=key)
                homes.setdefault(key, set()).add(reply.server_id)
    assert all(len(servers) == 1 for servers in homes.values())
    assert len({next(iter(s)) for s in homes.values()}) == 3  # keys spread over all servers


async def test_resolver_update_adds_and_drains_endpoints_without_failing_calls(
    echo_pb: ModuleType, three: Any
) -> None:
    a, b, c = ([Endpoint("127.0.0.1", s.port or 0)] for s in three)
    publish("moving", a + b)
    async with rpcfw.Channel(
        "manual://moving", balancer="round_robin", connect_backoff=FAST_BACKOFF
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == ports(three[:2]))
        in_flight = [
            asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(delay_ms=300))) for _ in range(6)
        ]
        await wait_until(lambda: sum(s.running_calls for s in three) == 6)  # all in handlers
        publish("moving", b + c)  # s0 leaves while calls run on it; s2 joins
        replies = await asyncio.wait_for(asyncio.gather(*in_flight), LIVENESS)  # liveness
        assert {r.server_id for r in replies} == {"s0", "s1"}
        await wait_until(lambda: ready_ports(channel) == ports(three[1:]))
        result = await run_load(echo_pb, stub, workers=1, calls=60)
        assert set(result.per_server) == {"s1", "s2"} and not result.failures


async def test_resolver_error_keeps_the_known_endpoints(echo_pb: ModuleType, three: Any) -> None:
    publish("flaky", [Endpoint("127.0.0.1", three[0].port or 0)])
    async with rpcfw.Channel("manual://flaky", balancer="round_robin") as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        publish("flaky", OSError("registry unreachable"))
        assert (await stub.unary(echo_pb.EchoRequest(message="still"))).server_id == "s0"


async def test_dns_target_resolves_localhost(echo_pb: ModuleType, three: Any) -> None:
    async with rpcfw.Channel(
        f"dns:///localhost:{three[0].port}", balancer="round_robin"
    ) as channel:
        reply = await echo_pb.EchoStub(channel).unary(
            echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS
        )
    assert reply.server_id == "s0"


async def test_all_endpoints_down_fails_fast_with_the_reasons(echo_pb: ModuleType) -> None:
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    target = "static:///" + ",".join(f"127.0.0.1:{p}" for p in ports)
    async with rpcfw.Channel(target, balancer="round_robin") as channel:
        with pytest.raises(rpcfw.RpcError) as info:  # UNAVAILABLE: failed, did not wait
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(), timeout=LIVENESS)
    assert info.value.status is rpcfw.Status.UNAVAILABLE
    assert str(ports[0]) in (info.value.message or "") and str(ports[1]) in (
        info.value.message or ""
    )


async def test_all_endpoints_down_then_one_returns_completes_waiting_calls(
    echo_pb: ModuleType,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with rpcfw.Channel(
        f"static:///127.0.0.1:{port}", balancer="round_robin", connect_backoff=FAST_BACKOFF
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        waiting = [
            asyncio.ensure_future(
                stub.unary(
                    echo_pb.EchoRequest(message=str(i)), wait_for_ready=True, timeout=3 * LIVENESS
                )
            )
            for i in range(5)
        ]
        await wait_until(lambda: channel.state == "TRANSIENT_FAILURE")  # connecting failed
        assert not any(t.done() for t in waiting)  # ... and the calls wait on
        server = rpcfw.Server([make_echo_service(echo_pb, "late")])
        await server.start("127.0.0.1", port)
        try:
            replies = await asyncio.wait_for(asyncio.gather(*waiting), LIVENESS)  # liveness
            assert [r.server_id for r in replies] == ["late"] * 5
        finally:
            await server.stop(grace=1)


async def test_waiting_call_hits_its_deadline_when_nothing_comes_up(echo_pb: ModuleType) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with rpcfw.Channel(f"127.0.0.1:{port}", connect_backoff=FAST_BACKOFF) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await echo_pb.EchoStub(channel).unary(
                echo_pb.EchoRequest(), wait_for_ready=True, timeout=0.3
            )
    assert info.value.status is rpcfw.Status.DEADLINE_EXCEEDED


def test_unknown_balancer_or_scheme_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="round_robin"):
        rpcfw.Channel("127.0.0.1:1", balancer="no_such_policy")
    with pytest.raises(ValueError, match="no resolver for scheme"):
        rpcfw.Channel("zk://x/y")


async def test_health_checked_channel_skips_a_not_serving_server_until_it_recovers(
    echo_pb: ModuleType, three: Any
) -> None:
    from rpcfw.health import ServingStatus

    async with rpcfw.Channel(
        static_target(three), balancer="round_robin", health_check=""
    ) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS)
        await wait_until(lambda: ready_ports(channel) == ports(three))
        assert three[1].health is not None
        three[1].health.set_status("", ServingStatus.NOT_SERVING)
        await wait_until(lambda: ready_ports(channel) == ports([three[0], three[2]]))
        result = await run_load(echo_pb, stub, workers=1, calls=60)
        assert result.per_server == {"s0": 30, "s2": 30}
        three[1].health.set_status("", ServingStatus.SERVING)
        await wait_until(lambda: ready_ports(channel) == ports(three))
        result = await run_load(echo_pb, stub, workers=1, calls=60)
        assert result.per_server == {"s0": 20, "s1": 20, "s2": 20}


async def test_health_checked_channel_treats_a_server_without_health_as_serving(
    echo_pb: ModuleType,
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "bare")], health=False)
    await server.start()
    try:
        async with rpcfw.Channel(server.address, health_check="") as channel:
            reply = await echo_pb.EchoStub(channel).unary(
                echo_pb.EchoRequest(), wait_for_ready=True, timeout=LIVENESS
            )
        assert reply.server_id == "bare"
    finally:
        await server.stop(grace=1)
