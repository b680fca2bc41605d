"""rpcfw on anyio: the same server and channel on trio (or asyncio), in one task group.

    pip install trio
    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/anyio_trio.py                # trio
    python examples/anyio_trio.py asyncio        # the same code on asyncio

What runs where: `Server.serve()` (with its graceful `stop(grace)`) and `Channel` (static, dns
and unix targets, TLS, compression, retries, interceptors) run on any anyio backend. Asyncio
only: `Server.start()/run()` (signals), registration (`registry=`) and the `etcd://` and
`local://` targets.
"""

from __future__ import annotations

import sys

import anyio
import anyio.lowlevel
from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        await anyio.lowlevel.checkpoint()  # handlers use anyio's (or the backend's) primitives
        return HelloReply(message=f"Hello, {request.name}!")


async def main(backend: str) -> None:
    server = rpcfw.Server([Greeter()])
    async with anyio.create_task_group() as tasks:
        port = await tasks.start(server.serve, "127.0.0.1", 0)
        async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:  # its tasks live in the block
            greeter = GreeterStub(channel)
            with anyio.fail_after(5):
                replies = [await greeter.say_hello(HelloRequest(name=n)) for n in ("ann", "bob")]
            print(f"on {backend}:", [r.message for r in replies])
        # drains the server (GOAWAY, calls in flight get up to 5 s), then serve() returns and the
        # task group exits; cancelling the task group instead would stop it at once
        await server.stop(grace=5)


if __name__ == "__main__":
    backend = sys.argv[1] if len(sys.argv) > 1 else "trio"
    anyio.run(main, backend, backend=backend)
