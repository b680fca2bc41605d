"""Fixtures that run real etcd members (Debian's etcd-server) on free 127.0.0.1 ports."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..etcd_server import EtcdProcess, etcd_available, make_cluster, start_all

#: set to 1 to skip the etcd tests on a machine without etcd (local runs only: CI sets nothing,
#: so there a missing etcd fails the run instead of skipping a whole suite in silence)
SKIP_ETCD = "RPCFW_SKIP_ETCD"

_missing = []
if importlib.util.find_spec("etcd3") is None:
    _missing.append("etcd3-py is not installed (pip install '.[etcd]')")
if not etcd_available():
    _missing.append("no etcd binary (/usr/bin/etcd, or etcd on PATH): apt-get install etcd-server")
if _missing and os.environ.get(SKIP_ETCD) == "1":
    collect_ignore_glob = ["test_*.py"]  # skipped on purpose: not collected at all
elif _missing:
    pytest.fail(
        f"the etcd tests cannot run: {'; '.join(_missing)}. They fail rather than skip, so that "
        f"CI never passes without them; to skip them on purpose in a local run, set "
        f"{SKIP_ETCD}=1",
        pytrace=False,
    )

from rpcfw.etcd import Etcd3PyClient  # noqa: E402  (after the check: it needs etcd3-py)

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
