"""gRPC health checking: rpcfw.HealthService behind rpcfw.Server, rpcfw clients, real sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from types import ModuleType

import pytest

import rpcfw
from rpcfw import HealthService, ServingStatus, Status
from rpcfw._proto.grpc.health.v1.health_rpcfw import HealthCheckRequest, HealthStub
from rpcfw.health import watch_health
from tests.echo_service import make_echo_service, wait_until

ECHO = "echo.v1.Echo"


@pytest.fixture
async def server(echo_pb: ModuleType) -> AsyncIterator[rpcfw.Server]:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=1)


async def check(channel: rpcfw.Channel, service: str) -> ServingStatus:
    response = await HealthStub(channel).check(HealthCheckRequest(service=service), timeout=2)
    return ServingStatus(response.status)


async def next_status(stream: AsyncIterator[ServingStatus]) -> ServingStatus:
    async with asyncio.timeout(2):
        return await anext(stream)


async def test_check_reports_served_services_and_the_server_and_not_found_otherwise(
    server: rpcfw.Server,
) -> None:
    assert server.health is not None
    assert server.services == (ECHO,)  # the automatic Health service is not listed
    async with rpcfw.Channel(server.address) as channel:
        assert await check(channel, ECHO) is ServingStatus.SERVING
        assert await check(channel, "") is ServingStatus.SERVING
        with pytest.raises(rpcfw.RpcError) as info:
            await check(channel, "no.such.Service")
        assert info.value.status is Status.NOT_FOUND
        server.health.set_status(ECHO, ServingStatus.NOT_SERVING)
        assert await check(channel, ECHO) is ServingStatus.NOT_SERVING
        server.health.clear_status(ECHO)
        with pytest.raises(rpcfw.RpcError) as info:
            await check(channel, ECHO)
        assert info.value.status is Status.NOT_FOUND


async def test_watch_sends_current_status_then_changes_and_ends_on_graceful_stop(
    echo_pb: ModuleType,
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start("127.0.0.1", 0)
    assert server.health is not None
    async with rpcfw.Channel(server.address) as channel:
        stub = HealthStub(channel)
        echo_watch = aiter(stub.watch(HealthCheckRequest(service=ECHO), timeout=10))
        whole_watch = aiter(stub.watch(HealthCheckRequest(service=""), timeout=10))
        async with asyncio.timeout(5):
            assert (await anext(echo_watch)).status == ServingStatus.SERVING
            assert (await anext(whole_watch)).status == ServingStatus.SERVING
            server.health.set_status(ECHO, ServingStatus.NOT_SERVING)
            assert (await anext(echo_watch)).status == ServingStatus.NOT_SERVING
            # the same status again is not news
            server.health.set_status(ECHO, ServingStatus.NOT_SERVING)
            server.health.set_status(ECHO, ServingStatus.SERVING)
            assert (await anext(echo_watch)).status == ServingStatus.SERVING

            # grace=None waits for every call: it returns only because the server ended the Watch
            # calls (it would hang if they kept running; the block's 5 s timeout is the liveness
            # bound that turns such a hang into a failure)
            await server.stop(grace=None)
            # both learned NOT_SERVING before the connection closed, then the call ended OK
            assert (await anext(echo_watch)).status == ServingStatus.NOT_SERVING
            assert (await anext(whole_watch)).status == ServingStatus.NOT_SERVING
            for watch in (echo_watch, whole_watch):
                with pytest.raises(StopAsyncIteration):
                    await anext(watch)
    # a stopped server's health stays NOT_SERVING whatever the application says
    server.health.set_status(ECHO, ServingStatus.SERVING)
    assert server.health.get_status(ECHO) is ServingStatus.NOT_SERVING


async def test_watch_of_an_unknown_service_gets_service_unknown_then_its_status(
    server: rpcfw.Server,
) -> None:
    assert server.health is not None
    async with rpcfw.Channel(server.address) as channel:
        statuses = watch_health(channel, "later.Service", timeout=10)
        assert await next_status(statuses) is ServingStatus.SERVICE_UNKNOWN
        server.health.set_status("later.Service", ServingStatus.SERVING)
        assert await next_status(statuses) is ServingStatus.SERVING
        server.health.clear_status("later.Service")
        assert await next_status(statuses) is ServingStatus.SERVICE_UNKNOWN
        await statuses.aclose()  # type: ignore[attr-defined]
        await wait_until(lambda: not server.health._watchers)  # type: ignore[union-attr]


async def test_watch_health_follows_a_server_until_it_stops(echo_pb: ModuleType) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start("127.0.0.1", 0)
    assert server.health is not None
    async with rpcfw.Channel(server.address) as channel:
        seen: list[ServingStatus] = []

        async def follow() -> None:
            async for status in watch_health(channel, timeout=10):
                seen.append(status)

        async with asyncio.timeout(5):
            follower = asyncio.ensure_future(follow())
            await wait_until(lambda: seen == [ServingStatus.SERVING])
            await server.stop(grace=2)
            await follower  # ended without an error
    assert seen == [ServingStatus.SERVING, ServingStatus.NOT_SERVING]


async def test_health_false_is_unimplemented_and_watch_health_treats_it_as_serving(
    echo_pb: ModuleType,
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")], health=False)
    await server.start("127.0.0.1", 0)
    assert server.health is None
    try:
        async with rpcfw.Channel(server.address) as channel:
            with pytest.raises(rpcfw.RpcError) as info:
                await check(channel, "")
            assert info.value.status is Status.UNIMPLEMENTED
            async with asyncio.timeout(2):
                statuses = [s async for s in watch_health(channel, timeout=2)]
            assert statuses == [ServingStatus.SERVING]
    finally:
        await server.stop(grace=1)


async def test_a_health_service_given_is_used_and_its_statuses_kept(echo_pb: ModuleType) -> None:
    health = HealthService()
    health.set_status(ECHO, ServingStatus.NOT_SERVING)
    server = rpcfw.Server([make_echo_service(echo_pb, "s1"), health])
    assert server.health is health
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            assert await check(channel, ECHO) is ServingStatus.NOT_SERVING  # set before start
            assert await check(channel, "") is ServingStatus.SERVING
            assert await check(channel, "grpc.health.v1.Health") is ServingStatus.SERVING
    finally:
        await server.stop(grace=1)
    assert health.get_status("") is ServingStatus.NOT_SERVING


async def test_stop_with_grace_0_still_ends_watch_calls(server: rpcfw.Server) -> None:
    async with rpcfw.Channel(server.address) as channel:
        statuses = watch_health(channel, timeout=10)
        assert await next_status(statuses) is ServingStatus.SERVING
        rest: list[ServingStatus] = []
        async with asyncio.timeout(3):
            await server.stop(grace=0)
            try:  # no time is given to tell: NOT_SERVING and OK, or cut off with UNAVAILABLE
                rest.extend([s async for s in statuses])
            except rpcfw.RpcError as exc:
                assert exc.status is Status.UNAVAILABLE
    assert rest in ([], [ServingStatus.NOT_SERVING])


def test_serving_status_matches_the_proto_enum() -> None:
    from rpcfw._proto.grpc.health.v1.health_pb2 import HealthCheckResponse

    assert {s.name: s.value for s in ServingStatus} == dict(
        HealthCheckResponse.ServingStatus.items()
    )
    assert ServingStatus.from_wire(99) is ServingStatus.UNKNOWN


@pytest.mark.parametrize("order", ["rpcfw first", "grpclib first"])
def test_rpcfw_coexists_with_grpclib_health_in_one_process(order: str) -> None:
    """Fault: the same grpc.health.v1 message names registered twice. rpcfw keeps its bundled
    health messages in a private descriptor pool, so either import order works."""
    imports = ["import rpcfw, rpcfw.health", "import grpclib.health.v1.health_pb2"]
    if order == "grpclib first":
        imports.reverse()
    code = "; ".join(imports) + "; from rpcfw.health import ServingStatus; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
