"""Fixtures that run real etcd members (Debian's etcd-server) on free 127.0.0.1 ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..etcd_server import EtcdProcess, etcd_available, make_cluster, start_all

pytest.importorskip("etcd3", reason="etcd3-py is not installed (pip install '.[etcd]')")

if not etcd_available():
    pytest.skip(
        "etcd binary not found (/usr/bin/etcd): apt-get install etcd-server",
        allow_module_level=True,
    )

from rpcfw.etcd import Etcd3PyClient

# Per-attempt timeout of test clients: short, so fault tests stay fast.
CLIENT_TIMEOUT = 1.0


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    """One fresh single-member etcd per test (starts in ~0.1-0.2 s)."""
    proc = EtcdProcess(tmp_path / "etcd")
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[list[EtcdProcess]]:
    """A fresh 3-member cluster per test."""
    members = make_cluster(tmp_path / "cluster", 3)
    try:
        start_all(members)
        yield members
    finally:
        for member in members:
            member.kill()


@pytest.fixture
async def client(etcd: EtcdProcess) -> AsyncIterator[Etcd3PyClient]:
    c = Etcd3PyClient([etcd.endpoint], timeout=CLIENT_TIMEOUT)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def cluster_client(etcd_cluster: list[EtcdProcess]) -> AsyncIterator[Etcd3PyClient]:
    c = Etcd3PyClient([m.endpoint for m in etcd_cluster], timeout=CLIENT_TIMEOUT)
    try:
        yield c
    finally:
        await c.close()
