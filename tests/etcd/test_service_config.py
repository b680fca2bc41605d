"""Service config from a real etcd (``/rpcfw/config/<service>``): an etcd:// channel follows
the key as operators put, change, break and delete it (the same scenario as the embedded
registry's test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpcfw
from rpcfw.etcd import Etcd3PyClient
from rpcfw.registry import config_key, etcd_registrar
from tests.etcd_server import EtcdProcess
from tests.integration.test_resolver_service_config import SERVICE, run_config_scenario
from tests.integration.test_retries import make_scripted


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
