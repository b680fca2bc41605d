"""The server process (``abuse.py --role serve --kind rpcfw|grpc.aio``): an Echo server of
either kind on 127.0.0.1 that counts its calls and answers "stats" requests on stdin."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["serve"]


async def serve(kind: str) -> None:
    """A server on 127.0.0.1 serving echo.v1.Echo/Unary (``message`` "abort:<code>:<text>"
    aborts, ``delay_ms`` sleeps first); prints {"port", "pid"}; answers "stats" on stdin."""
    from bench_pb.echo.v1 import echo_rpcfw as mod  # type: ignore[import-not-found]

    state: dict[str, Any] = {"calls": 0, "running": 0, "cancelled": 0, "peers": set()}

    def begin(peer: str) -> None:
        state["calls"] += 1
        state["running"] += 1
        state["peers"].add(peer)

    extra: Callable[[], dict[str, Any]]
    if kind == "rpcfw":
        import rpcfw
        from tests.echo_service import make_echo_service

        class _Count:  # the test service keeps a list of cancelled calls: count them instead
            def append(self, item: object) -> None:
                pass

        class Echo(type(make_echo_service(mod, "rpcfw"))):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.cancelled = _Count()

            async def unary(self, request: Any, context: Any) -> Any:
                begin(context.peer)
                try:
                    return await super().unary(request, context)
                except asyncio.CancelledError:
                    state["cancelled"] += 1
                    raise
                finally:
                    state["running"] -= 1

        server = rpcfw.Server([Echo()])
        await server.start("127.0.0.1", 0)
        port = server.port

        def rpcfw_stats() -> dict[str, Any]:
            return {
                **dataclasses.asdict(server.transport_stats()),
                "open_connections": server.open_connections,
                "running_calls": server.running_calls,
            }

        extra = rpcfw_stats

    else:
        import grpc

        codes = {c.value[0]: c for c in grpc.StatusCode}

        async def unary(request: Any, context: Any) -> Any:
            begin(context.peer())
            try:
                if request.message.startswith("abort:"):
                    _, code, text = request.message.split(":", 2)
                    await context.abort(codes[int(code)], text)
                if request.delay_ms:
                    await asyncio.sleep(request.delay_ms / 1000)
                return mod.EchoResponse(
                    message=request.message, payload=request.payload, server_id="grpc.aio"
                )
            except asyncio.CancelledError:
                state["cancelled"] += 1
                raise
            finally:
                state["running"] -= 1

        handler = grpc.method_handlers_generic_handler(
            "echo.v1.Echo",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(
                    unary, mod.EchoRequest.FromString, mod.EchoResponse.SerializeToString
                )
            },
        )
        extra = dict
        aserver = grpc.aio.server()
        aserver.add_generic_rpc_handlers((handler,))
        port = aserver.add_insecure_port("127.0.0.1:0")
        await aserver.start()
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if json.loads(line).get("cmd") == "stats":
            out = {k: v for k, v in state.items() if k != "peers"}
            out["connections_seen_by_handlers"] = len(state["peers"])
            out.update(extra())
            print(json.dumps(out), flush=True)
    os._exit(0)  # stdin closed: the parent is done with us
