"""Service config from a real etcd (``/rpcfw/config/<service>``): an etcd:// channel follows
the key as operators put, change, break and delete it (the same scenario as the embedded
registry's test)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw import Status
from rpcfw.etcd import Etcd3PyClient
from rpcfw.registry import config_key, etcd_registrar
from tests.echo_service import wait_until
from tests.etcd_server import EtcdProcess
from tests.integration.test_resolver_service_config import (
    SERVICE,
    max_attempts,
    resolver_stat,
    run_config_scenario,
)
from tests.integration.test_retries import UNAVAILABLE, make_scripted, retry_config


@pytest.fixture
async def scripted(echo_pb: ModuleType, etcd: EtcdProcess) -> AsyncIterator[Any]:
    service = make_scripted(echo_pb)
    server = rpcfw.Server([service], registry=etcd_registrar(etcd.endpoint, timeout=0.5))
    await server.start("127.0.0.1", 0)
    yield service
    await server.stop(grace=1)


async def test_etcd_config_put_changed_invalid_deleted_while_the_channel_runs(
    echo_pb: ModuleType,
    etcd: EtcdProcess,
    client: Etcd3PyClient,
    scripted: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = config_key(SERVICE)
    async with rpcfw.Channel(f"etcd://{etcd.endpoint}/{SERVICE}") as channel:
        await run_config_scenario(
            echo_pb,
            scripted,
            channel,
            lambda value: client.put(key, value),
            lambda: client.delete(key),
            caplog,
        )


async def test_etcd_config_change_after_a_brief_etcd_outage_reaches_the_channel(
    echo_pb: ModuleType, etcd: EtcdProcess, client: Etcd3PyClient, scripted: Any
) -> None:
    """Fault: etcd is stopped (the channel's config watch breaks) while the channel runs with
    maxAttempts 4 from the registry. Meanwhile calls keep that config; etcd comes back (same
    data) and a new config (maxAttempts 2) is written: the channel applies it."""
    key = config_key(SERVICE)
    spec = dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)
    request = echo_pb.EchoRequest(message="x")

    async def attempts(script: list[Any], ok: bool) -> list[str | None]:
        scripted.previous.clear()
        scripted.script[:] = script
        if ok:
            await channel.unary_unary(spec, request, timeout=5)
        else:
            with pytest.raises(rpcfw.RpcError) as info:
                await channel.unary_unary(spec, request, timeout=5)
            assert info.value.status is Status.UNAVAILABLE
        return list(scripted.previous)

    await client.put(key, json.dumps(retry_config(max_attempts=4)).encode())
    async with rpcfw.Channel(f"etcd://{etcd.endpoint}/{SERVICE}") as channel:
        await channel.unary_unary(spec, request, wait_for_ready=True, timeout=5)
        assert max_attempts(channel) == 4

        await asyncio.to_thread(etcd.stop)  # the fault
        await wait_until(lambda: resolver_stat(channel, "config_watch_failed") >= 1, within=10)
        # etcd is down: the config in force still applies (2 failures, OK on the 3rd attempt)
        assert await attempts([UNAVAILABLE, UNAVAILABLE], ok=True) == [None, "1", "2"]
        assert max_attempts(channel) == 4

        await asyncio.to_thread(etcd.start)  # back, with its data
        updated = resolver_stat(channel, "config_updated")
        await client.put(key, json.dumps(retry_config(max_attempts=2)).encode())
        await wait_until(lambda: max_attempts(channel) == 2, within=15)
        assert resolver_stat(channel, "config_updated") == updated + 1
        # the new policy: the same two failures now fail the call after 2 attempts
        assert await attempts([UNAVAILABLE, UNAVAILABLE], ok=False) == [None, "1"]
