"""``rpcfw call``, ``list``, ``describe`` and ``bench`` against a grpcio server (grpc.aio with
grpcio-reflection, v1alpha only): the schema from its reflection, calls of every kind."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection as grpc_reflection

from ..conftest import load_echo
from ..interop.grpc_peer import SERVICE, GrpcEcho
from .conftest import LIVENESS, run


@pytest.fixture(scope="module")
def grpcio_address(generated_root: Path) -> Iterator[str]:
    """A grpc.aio Echo server with reflection, on its own loop in a thread."""
    echo = load_echo(generated_root, "protobuf")  # registers echo.proto in the default pool
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[Any, int]:
        server: Any = grpc.aio.server()
        server.add_generic_rpc_handlers([GrpcEcho(echo).handler()])
        grpc_reflection.enable_server_reflection([SERVICE, grpc_reflection.SERVICE_NAME], server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(LIVENESS)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(LIVENESS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(LIVENESS)
        loop.close()


def test_list_and_describe_a_grpcio_server(cli_env: dict[str, str], grpcio_address: str) -> None:
    services = run(cli_env, "list", grpcio_address)
    assert services.returncode == 0, services.stderr
    assert SERVICE in services.stdout.splitlines()
    described = run(cli_env, "describe", grpcio_address, "echo.v1.EchoRequest")
    assert described.returncode == 0, described.stderr
    assert "int32 delay_ms = 4;" in described.stdout


def test_call_every_kind_on_a_grpcio_server(cli_env: dict[str, str], grpcio_address: str) -> None:
    unary = run(cli_env, "call", grpcio_address, "echo.v1.Echo/Unary", "-d", '{"message": "u"}')
    assert unary.returncode == 0, unary.stderr
    assert json.loads(unary.stdout) == {"message": "u", "serverId": "grpcio"}
    stream = run(
        cli_env, "call", grpcio_address, "echo.v1.Echo/ServerStream",
        "-d", '{"message": "s", "count": 2}',
    )  # fmt: skip
    assert len(stream.stdout.splitlines()) == 2
    lines = '{"message": "a"}\n{"message": "b"}\n'
    client = run(
        cli_env, "call", grpcio_address, "echo.v1.Echo/ClientStream", "-d", "@", stdin=lines
    )
    assert json.loads(client.stdout)["message"] == "a,b"
    bidi = run(cli_env, "call", grpcio_address, "echo.v1.Echo/Bidi", "-d", "@", stdin=lines)
    assert [json.loads(line)["message"] for line in bidi.stdout.splitlines()] == ["a", "b"]
    failed = run(
        cli_env, "call", grpcio_address, "echo.v1.Echo/Unary", "-d", '{"message": "abort:7:no"}'
    )
    assert failed.returncode == 7
    assert "status: PERMISSION_DENIED (7)" in failed.stderr


def test_bench_a_grpcio_server_with_its_reflection(
    cli_env: dict[str, str], grpcio_address: str
) -> None:
    result = run(cli_env, "bench", grpcio_address, "echo.v1.Echo/Unary", "-n", "20", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] == 20
