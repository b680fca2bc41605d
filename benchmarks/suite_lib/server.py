"""Child side, ``--serve``: one stack's echo server (rpcfw, grpclib or grpc.aio, optionally
over TLS or with gzip) on 127.0.0.1; it prints its port, runs until the parent closes its
stdin, and with ``--cprofile-out`` profiles itself meanwhile."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

from . import security
from .child import stack_messages
from .model import PATHS, SERVICE

__all__ = ["serve"]


def _exit_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """The parent holds our stdin: when it closes (or dies), stop; exit hard if stopping hangs."""

    def watch() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


async def serve(
    stack: str, profile_out: str | None, option: str | None = None, certs: Path | None = None
) -> None:
    security.check(stack, option)
    mod = stack_messages(stack)
    Req, Resp = mod.EchoRequest, mod.EchoResponse
    stop = asyncio.Event()
    _exit_on_stdin_eof(asyncio.get_running_loop(), stop)
    if stack.startswith("rpcfw"):
        import rpcfw

        class Echo(mod.EchoBase):  # type: ignore[misc,name-defined]
            async def unary(self, request, context):  # type: ignore[no-untyped-def]
                return Resp(payload=request.payload)

            async def server_stream(self, request, context):  # type: ignore[no-untyped-def]
                for _ in range(request.count):
                    yield Resp(payload=request.payload)

            async def client_stream(self, requests, context):  # type: ignore[no-untyped-def]
                async for _ in requests:
                    pass
                return Resp()

            async def bidi(self, requests, context):  # type: ignore[no-untyped-def]
                async for request in requests:
                    yield Resp(payload=request.payload)

        server = rpcfw.Server([Echo()], **security.rpcfw_server_kwargs(option))
        await server.start("127.0.0.1", 0, **security.rpcfw_start_kwargs(option, certs))
        port = server.port
    elif stack == "grpclib":
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        class GEcho:
            async def unary(self, stream):  # type: ignore[no-untyped-def]
                request = await stream.recv_message()
                await stream.send_message(Resp(payload=request.payload))

            async def server_stream(self, stream):  # type: ignore[no-untyped-def]
                request = await stream.recv_message()
                for _ in range(request.count):
                    await stream.send_message(Resp(payload=request.payload))

            async def bidi(self, stream):  # type: ignore[no-untyped-def]
                async for request in stream:
                    await stream.send_message(Resp(payload=request.payload))

            def __mapping__(self):  # type: ignore[no-untyped-def]
                return {
                    PATHS["unary"]: Handler(self.unary, Cardinality.UNARY_UNARY, Req, Resp),
                    PATHS["server-stream"]: Handler(
                        self.server_stream, Cardinality.UNARY_STREAM, Req, Resp
                    ),
                    PATHS["bidi"]: Handler(self.bidi, Cardinality.STREAM_STREAM, Req, Resp),
                }

        gserver = Server([GEcho()])
        await gserver.start("127.0.0.1", 0)
        port = gserver._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    else:
        import grpc

        async def unary(request, context):  # type: ignore[no-untyped-def]
            return Resp(payload=request.payload)

        async def server_stream(request, context):  # type: ignore[no-untyped-def]
            for _ in range(request.count):
                yield Resp(payload=request.payload)

        async def bidi(requests, context):  # type: ignore[no-untyped-def]
            async for request in requests:
                yield Resp(payload=request.payload)

        de, ser = Req.FromString, Resp.SerializeToString
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary, de, ser),
                "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, de, ser),
                "Bidi": grpc.stream_stream_rpc_method_handler(bidi, de, ser),
            },
        )
        aserver = security.grpc_server(option)
        aserver.add_generic_rpc_handlers((handler,))
        port = security.grpc_add_port(aserver, option, certs)
        await aserver.start()
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    print(port, flush=True)
    await stop.wait()
    if profiler is not None and profile_out:
        profiler.disable()
        profiler.dump_stats(profile_out)
    sys.stdout.flush()
    os._exit(0)
