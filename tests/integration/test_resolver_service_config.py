"""Service config from the registry (``/rpcfw/config/<service>``) through the embedded store
(``local:///service``): operators change the retry policy of running channels.

The scripted server counts attempts; the tests wait for the resolver to have applied a change
(``channel.service_config`` / ``resolver.stats``), never sleep. ``run_config_scenario`` runs
against a real etcd too (tests/etcd/test_service_config.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw import Status
from rpcfw.registry import LeaseRegistrar, LocalStore, config_key, default_store, local
from tests.echo_service import wait_until

from .test_retries import UNAVAILABLE, make_scripted, retry_config

SERVICE = "echo.v1.Echo"
TARGET = f"local:///{SERVICE}"
PATH = f"/{SERVICE}/Unary"

Put = Callable[[bytes], Awaitable[object]]
Delete = Callable[[], Awaitable[object]]


def max_attempts(channel: rpcfw.Channel) -> int | None:
    """The retry maxAttempts the channel applies to Unary now (None: no retry policy)."""
    config = channel.service_config
    method = None if config is None else config.method_config(PATH)
    policy = None if method is None else method.retry_policy
    return None if policy is None else policy.max_attempts


def resolver_stat(channel: rpcfw.Channel, name: str) -> int:
    resolver = channel._core.resolver
    assert resolver is not None
    return int(resolver.stats.get(name, 0))  # type: ignore[attr-defined]


async def run_config_scenario(
    echo_pb: ModuleType,
    service: Any,
    channel: rpcfw.Channel,
    put: Put,
    delete: Delete,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Put / change / break / delete the config key while ``channel`` runs; count attempts."""
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    request = echo_pb.EchoRequest(message="x")

    async def attempts(script: list[Any], ok: bool) -> int:
        service.previous.clear()
        service.script[:] = script
        if ok:
            await channel.unary_unary(spec, request, timeout=5)
        else:
            with pytest.raises(rpcfw.RpcError) as info:
                await channel.unary_unary(spec, request, timeout=5)
            assert info.value.status is Status.UNAVAILABLE
        return len(service.previous)

    # no config in the registry: sent once
    await channel.unary_unary(spec, request, wait_for_ready=True, timeout=5)
    assert channel.service_config is None
    assert await attempts([UNAVAILABLE], ok=False) == 1

    # a retry policy appears: two failures, then OK on the third attempt
    await put(json.dumps(retry_config(max_attempts=4)).encode())
    await wait_until(lambda: max_attempts(channel) == 4, within=5)
    assert await attempts([UNAVAILABLE, UNAVAILABLE], ok=True) == 3
    assert service.previous == [None, "1", "2"]

    # maxAttempts 2: the same two failures now fail the call after 2 attempts
    await put(json.dumps(retry_config(max_attempts=2)).encode())
    await wait_until(lambda: max_attempts(channel) == 2, within=5)
    assert await attempts([UNAVAILABLE, UNAVAILABLE], ok=False) == 2

    # invalid JSON: logged once, the previous config (maxAttempts 2) stays
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rpcfw.resolver"):
        await put(b"{not json")
        await wait_until(lambda: resolver_stat(channel, "config_invalid") == 1, within=5)
        assert max_attempts(channel) == 2
        assert await attempts([UNAVAILABLE, UNAVAILABLE], ok=False) == 2
        # a valid JSON that is not a valid config (maxAttempts 1) is refused the same way
        await put(json.dumps(retry_config(max_attempts=1)).encode())
        await wait_until(lambda: resolver_stat(channel, "config_invalid") == 2, within=5)
        assert max_attempts(channel) == 2
    warnings = [r for r in caplog.records if "invalid service config" in r.getMessage()]
    assert len(warnings) == 2, [r.getMessage() for r in caplog.records]

    # deleted: no retries any more
    await delete()
    await wait_until(lambda: channel.service_config is None, within=5)
    assert await attempts([UNAVAILABLE], ok=False) == 1


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[LocalStore]:
    local._default = None
    yield default_store()
    local._default = None


@pytest.fixture
async def scripted(echo_pb: ModuleType) -> AsyncIterator[Any]:
    service = make_scripted(echo_pb)
    server = rpcfw.Server([service], registry=LeaseRegistrar(default_store(), ttl=10))
    await server.start("127.0.0.1", 0)
    yield service
    await server.stop(grace=1)


async def test_registry_config_put_changed_invalid_deleted_while_the_channel_runs(
    echo_pb: ModuleType, scripted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = default_store()
    key = config_key(SERVICE)
    assert key == "/rpcfw/config/echo.v1.Echo"
    async with rpcfw.Channel(TARGET) as channel:
        await run_config_scenario(
            echo_pb,
            scripted,
            channel,
            lambda value: store.put(key, value),
            lambda: store.delete(key),
            caplog,
        )


async def test_config_present_before_the_channel_applies_to_its_first_call(
    echo_pb: ModuleType, scripted: Any
) -> None:
    await default_store().put(config_key(SERVICE), json.dumps(retry_config(3)).encode())
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    scripted.script[:] = [UNAVAILABLE, UNAVAILABLE]
    async with rpcfw.Channel(TARGET, wait_for_ready=True) as channel:
        await channel.unary_unary(spec, echo_pb.EchoRequest(), timeout=5)
        assert len(scripted.previous) == 3
        assert max_attempts(channel) == 3


async def test_channel_config_is_the_default_the_resolver_config_replaces_it(
    echo_pb: ModuleType, scripted: Any
) -> None:
    store, key = default_store(), config_key(SERVICE)
    async with rpcfw.Channel(TARGET, service_config=retry_config(3)) as channel:
        await channel.unary_unary(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(), timeout=5)
        assert max_attempts(channel) == 3  # the resolver has none: the channel's own
        await store.put(key, json.dumps(retry_config(5)).encode())
        await wait_until(lambda: max_attempts(channel) == 5)
        channel.set_service_config(retry_config(2))  # the default changes, the resolver's wins
        assert max_attempts(channel) == 5
        await store.delete(key)
        await wait_until(lambda: max_attempts(channel) == 2)  # back to the channel's own


async def test_use_resolver_config_false_ignores_the_registry(
    echo_pb: ModuleType, scripted: Any
) -> None:
    store, key = default_store(), config_key(SERVICE)
    await store.put(key, json.dumps(retry_config(5)).encode())
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    async with rpcfw.Channel(
        TARGET, service_config=retry_config(2), use_resolver_config=False, wait_for_ready=True
    ) as channel:
        scripted.script[:] = [UNAVAILABLE, UNAVAILABLE]
        with pytest.raises(rpcfw.RpcError):
            await channel.unary_unary(spec, echo_pb.EchoRequest(), timeout=5)
        assert len(scripted.previous) == 2
        assert max_attempts(channel) == 2
        resolver = channel._core.resolver
        assert resolver is not None and resolver.config_listener is None


async def test_a_custom_resolver_without_configs_keeps_working_and_may_publish_one(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """The contract is optional: a resolver that never publishes a config leaves the channel's
    own in force; one that calls ``publish_service_config`` replaces it."""
    from rpcfw.endpoint import Endpoint
    from rpcfw.policy import ServiceConfig

    from .manual_resolver import _live, publish

    port = next(iter(default_store()._data.values())).value  # the registered instance
    endpoint = Endpoint("127.0.0.1", json.loads(port)["port"])
    publish("cfg", [endpoint])
    async with rpcfw.Channel("manual://cfg", service_config=retry_config(3)) as channel:
        await channel.unary_unary(echo_pb.ECHO_UNARY, echo_pb.EchoRequest(), timeout=5)
        assert max_attempts(channel) == 3
        (resolver,) = _live["cfg"]
        assert resolver.config_listener is not None
        resolver.publish_service_config(ServiceConfig.from_json(retry_config(4)))
        assert max_attempts(channel) == 4
        resolver.publish_service_config(None)
        assert max_attempts(channel) == 3
