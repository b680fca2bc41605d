"""Shared fixtures: code generated from proto/ for both message backends, and Echo servers."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import rpcfw

from .echo_service import make_echo_service

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("protobuf", "betterproto2")


@pytest.fixture(scope="session")
def generated_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """proto/ generated once per session as packages gen_protobuf and gen_betterproto2."""
    from rpcfw_codegen import Backend, generate_tree

    root = tmp_path_factory.mktemp("generated")
    for backend in Backend:
        generate_tree(
            [ROOT / "proto"],
            root / f"gen_{backend.value}",
            includes=[ROOT / "proto"],
            backend=backend,
        )
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def load_echo(generated_root: Path, backend: str) -> ModuleType:
    return importlib.import_module(f"gen_{backend}.echo.v1.echo_rpcfw")


@pytest.fixture(scope="session", params=BACKENDS)
def echo(request: pytest.FixtureRequest, generated_root: Path) -> ModuleType:
    """The generated echo module (stubs, bases, messages), once per message backend."""
    return load_echo(generated_root, request.param)


@pytest.fixture(scope="session")
def echo_pb(generated_root: Path) -> ModuleType:
    """The protobuf-backend echo module only (for tests where the backend does not matter)."""
    return load_echo(generated_root, "protobuf")


@pytest.fixture
async def echo_server(echo: ModuleType) -> AsyncIterator[rpcfw.Server]:
    server = rpcfw.Server([make_echo_service(echo, "s1")])
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=1)


@pytest.fixture
async def echo_channel(echo_server: rpcfw.Server) -> AsyncIterator[rpcfw.Channel]:
    async with rpcfw.Channel(echo_server.address) as channel:
        yield channel
