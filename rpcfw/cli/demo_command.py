"""``rpcfw demo``: generate stubs from proto/, start servers, call all four kinds, print."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from .. import CallContext, Channel, RpcError, Server, ServiceBase, Status
from ..registry import LeaseRegistrar, default_store

__all__ = ["demo"]


def _echo_service(mod: ModuleType, server_id: str) -> ServiceBase:
    Response = mod.EchoResponse

    class DemoEcho(mod.EchoBase):  # type: ignore[misc,name-defined]
        async def unary(self, request: Any, context: CallContext) -> Any:
            if request.message == "fail":
                context.abort(Status.FAILED_PRECONDITION, "demo failure, as asked")
            return Response(message=request.message, server_id=server_id)

        async def server_stream(self, request: Any, context: CallContext) -> AsyncIterator[Any]:
            for index in range(request.count):
                yield Response(
                    message=f"{request.message} #{index}", index=index, server_id=server_id
                )

        async def client_stream(self, requests: AsyncIterator[Any], context: CallContext) -> Any:
            words = [r.message async for r in requests]
            return Response(message=" ".join(words), index=len(words), server_id=server_id)

        async def bidi(
            self, requests: AsyncIterator[Any], context: CallContext
        ) -> AsyncIterator[Any]:
            async for request in requests:
                yield Response(message=request.message.upper(), server_id=server_id)

    service: ServiceBase = DemoEcho()
    return service


async def _run(mod: ModuleType, servers: int, calls: int, balancer: str) -> None:
    started = []
    for index in range(servers):
        server = Server(
            [_echo_service(mod, f"server-{index + 1}")],
            registry=LeaseRegistrar(default_store()),  # embedded registry: no etcd needed
        )
        await server.start("127.0.0.1", 0)
        started.append(server)
        typer.echo(
            f"started {server.services[0]} server-{index + 1} on {server.address} (registered)"
        )
    target = f"local:///{started[0].services[0]}"
    typer.echo(f"channel target: {target} (balancer: {balancer}; endpoints from the registry)\n")
    Request = mod.EchoRequest
    try:
        async with Channel(target, balancer=balancer) as channel:
            stub = mod.EchoStub(channel)
            reply = await stub.unary(Request(message="hello"), timeout=5, wait_for_ready=True)
            await asyncio.sleep(0.1)  # let the other servers' connections come up
            typer.echo(f"unary          -> {reply.message!r} from {reply.server_id}")
            replies = [r async for r in stub.server_stream(Request(message="tick", count=3))]
            typer.echo(f"server stream  -> {[r.message for r in replies]}")
            reply = await stub.client_stream([Request(message=w) for w in ("one", "two", "three")])
            typer.echo(f"client stream  -> {reply.message!r} ({reply.index} requests)")
            async with stub.bidi() as stream:
                for word in ("ping", "pong"):
                    await stream.send(Request(message=word))
                    answer = await stream.recv()
                    typer.echo(f"bidi           -> sent {word!r}, got {answer.message!r}")
                await stream.done_writing()
            try:
                await stub.unary(Request(message="fail"))
            except RpcError as exc:
                typer.echo(f"error status   -> {exc.status.name}: {exc.message}")

            async def count(label: str) -> None:
                counts: dict[str, int] = {}
                failed = 0
                start = time.perf_counter()
                for _ in range(calls):
                    try:
                        reply = await stub.unary(Request(message="count"))
                    except RpcError:
                        failed += 1
                        continue
                    counts[reply.server_id] = counts.get(reply.server_id, 0) + 1
                elapsed = time.perf_counter() - start
                spread = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
                rate = calls / elapsed if elapsed else 0.0
                typer.echo(f"\n{label}: {calls} unary calls in {elapsed:.2f}s ({rate:.0f}/s)")
                typer.echo(f"  per server: {spread}; failed: {failed}")

            await count("balanced")
            joining = Server(
                [_echo_service(mod, f"server-{servers + 1}")],
                registry=LeaseRegistrar(default_store()),
            )
            await joining.start("127.0.0.1", 0)
            started.append(joining)
            await asyncio.sleep(0.1)  # the watch delivers the new instance
            await count(f"server-{servers + 1} registered (no client restart)")
            leaving = started.pop(0)
            stopping = asyncio.ensure_future(leaving.stop(grace=5))
            await count("server-1 stopping gracefully (deregistered, then drained)")
            await stopping
    finally:
        for server in started:
            await server.stop(grace=1)
    typer.echo("all servers stopped")


def demo(
    proto: Annotated[Path, typer.Option(help="Folder holding echo/v1/echo.proto.")] = Path("proto"),
    messages: Annotated[
        str, typer.Option(help="Message backend: betterproto2 or protobuf.")
    ] = "betterproto2",
    servers: Annotated[int, typer.Option(min=1, max=16, help="How many servers to start.")] = 3,
    calls: Annotated[
        int, typer.Option(min=0, max=100_000, help="Unary calls for the count.")
    ] = 300,
    balancer: Annotated[
        str, typer.Option(help="Balancing policy for the channel.")
    ] = "round_robin",
) -> None:
    """Generate stubs from PROTO, start SERVERS echo servers, call every method kind."""
    from rpcfw_codegen import Backend, GenError, generate_tree

    if not (proto / "echo" / "v1" / "echo.proto").is_file():
        typer.echo(
            f"error: {proto}/echo/v1/echo.proto not found (run from the repo or pass --proto)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        backend = Backend(messages)
    except ValueError:
        typer.echo(f"error: unknown message backend {messages!r}", err=True)
        raise typer.Exit(2) from None
    with tempfile.TemporaryDirectory(prefix="rpcfw-demo-") as tmp:
        try:
            generate_tree([proto], Path(tmp) / "demo_gen", includes=[proto], backend=backend)
        except GenError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"generated stubs from {proto}/ ({backend.value} messages)")
        sys.path.insert(0, tmp)
        try:
            mod = importlib.import_module("demo_gen.echo.v1.echo_rpcfw")
            asyncio.run(_run(mod, servers, calls, balancer))
        finally:
            sys.path.remove(tmp)
