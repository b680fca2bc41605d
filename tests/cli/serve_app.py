"""Import paths for ``rpcfw serve`` tests (run with the generated ``gen_protobuf`` package and
the repository on PYTHONPATH)."""

from __future__ import annotations

from typing import Any

from gen_protobuf.echo.v1 import echo_rpcfw

from tests.echo_service import make_echo_service

__all__ = ["async_services", "echo", "failing_factory", "not_a_service", "services"]

echo = make_echo_service(echo_rpcfw, "served")
not_a_service = 42


def services() -> list[Any]:
    return [make_echo_service(echo_rpcfw, "factory")]


async def async_services() -> Any:
    return make_echo_service(echo_rpcfw, "async-factory")


def failing_factory() -> Any:
    raise RuntimeError("database unreachable")
