"""rpcfw on uvloop: server and channel, all four call kinds (uvloop's transports are not
asyncio.Transport subclasses; rpcfw must not assume they are)."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

import rpcfw
from tests.echo_service import make_echo_service

uvloop = pytest.importorskip("uvloop")


async def _all_kinds(mod: ModuleType) -> list[str]:
    server = rpcfw.Server([make_echo_service(mod, "uv")])
    await server.start()
    try:
        async with rpcfw.Channel(server.address, balancer="round_robin") as channel:
            stub = mod.EchoStub(channel)
            out = [(await stub.unary(mod.EchoRequest(message="u"))).message]
            out += [
                r.message async for r in stub.server_stream(mod.EchoRequest(message="s", count=2))
            ]
            out.append(
                (await stub.client_stream([mod.EchoRequest(message=m) for m in "ab"])).message
            )
            out += [r.message async for r in stub.bidi([mod.EchoRequest(message="b")])]
            return out
    finally:
        await server.stop(grace=1)


def test_server_and_channel_run_all_four_kinds_on_uvloop(echo_pb: ModuleType) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(_all_kinds(echo_pb)) == ["u", "s", "s", "a,b", "b"]
