"""A handler that streams as fast as it can does not starve other connections.

Fault injected: a server-streaming handler yields 100,000 messages without ever awaiting (and
without flow control stopping it: they fit the windows). A unary call on another connection,
made after the stream started, must complete while that handler is still producing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import rpcfw
from tests.echo_service import make_echo_service

TOTAL = 100_000
LIVENESS = 30.0  # generous bound: only a hang trips it


async def test_a_greedy_stream_handler_lets_another_connection_be_served(
    echo_pb: ModuleType,
) -> None:
    produced = 0
    echo_class: Any = type(make_echo_service(echo_pb, "greedy"))

    class Greedy(echo_class):  # type: ignore[misc,valid-type]
        async def server_stream(
            self, request: Any, context: rpcfw.CallContext
        ) -> AsyncIterator[Any]:
            nonlocal produced
            reply = echo_pb.EchoResponse()
            for _ in range(TOTAL):
                produced += 1
                yield reply

    server = rpcfw.Server([Greedy()])
    await server.start()
    try:
        async with (
            rpcfw.Channel(server.address) as streaming,
            rpcfw.Channel(server.address) as other,
        ):
            replies = echo_pb.EchoStub(streaming).server_stream(echo_pb.EchoRequest())
            async with asyncio.timeout(LIVENESS):
                await anext(replies)  # the greedy handler is running
                await echo_pb.EchoStub(other).unary(echo_pb.EchoRequest(message="x"))
            assert produced < TOTAL  # served while the greedy handler was still at it
            await replies.aclose()
    finally:
        await server.stop(grace=0)
