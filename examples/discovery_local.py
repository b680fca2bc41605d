"""Service discovery and client-side balancing without etcd: three Greeter servers register in
the embedded registry, one `local:///` channel balances calls over them (round robin), and
stopping a server takes it out of rotation.

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/discovery_local.py

With etcd, change two lines: `registry=etcd_registrar("127.0.0.1:2379")` on the servers and the
target `etcd://127.0.0.1:2379/helloworld.Greeter` (see discovery_etcd.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw
from rpcfw.registry import LeaseRegistrar, default_store


class Greeter(GreeterBase):
    def __init__(self, name: str) -> None:
        self.name = name

    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message=self.name)


async def main() -> None:
    servers = [
        rpcfw.Server([Greeter(f"server-{i}")], registry=LeaseRegistrar(default_store()))
        for i in range(3)
    ]
    for server in servers:
        await server.start("127.0.0.1", 0)  # registers helloworld.Greeter at its address
    try:
        target = "local:///helloworld.Greeter"
        async with rpcfw.Channel(target, balancer="round_robin") as channel:
            greeter = GreeterStub(channel)
            await channel.channel_ready()
            async with asyncio.timeout(10):  # until every server is connected
                while len(await _served_by(greeter, 30)) < 3:
                    pass
            print("3 servers:", sorted((await _served_by(greeter, 30)).items()))

            await servers[0].stop(grace=1)  # deregisters first, then drains
            async with asyncio.timeout(10):  # until the channel has seen it go
                while "server-0" in await _served_by(greeter, 10):
                    pass
            print("after stopping server-0:", sorted((await _served_by(greeter, 30)).items()))
    finally:
        for server in servers:
            await server.stop(grace=1)


async def _served_by(greeter: GreeterStub, calls: int) -> Counter[str]:
    replies = [await greeter.say_hello(HelloRequest(name="x"), timeout=5) for _ in range(calls)]
    return Counter(reply.message for reply in replies)


if __name__ == "__main__":
    asyncio.run(main())
