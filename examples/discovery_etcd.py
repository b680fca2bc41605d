"""Service discovery with etcd: two Greeter servers register under leases, an `etcd://`
channel follows the registry live and balances over them.

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    etcd &                                       # or any etcd 3.4+ reachable from here
    python examples/discovery_etcd.py --etcd 127.0.0.1:2379
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw
from rpcfw.registry import etcd_registrar


class Greeter(GreeterBase):
    def __init__(self, name: str) -> None:
        self.name = name

    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message=self.name)


async def main(etcd: str) -> None:
    servers = [
        rpcfw.Server([Greeter(f"server-{i}")], registry=etcd_registrar(etcd, ttl=5))
        for i in range(2)
    ]
    for server in servers:
        await server.start("127.0.0.1", 0)  # a lease, and a key per service it serves
    try:
        target = f"etcd://{etcd}/helloworld.Greeter"
        async with rpcfw.Channel(target, balancer="round_robin") as channel:
            greeter = GreeterStub(channel)
            async with asyncio.timeout(10):  # until both registrations reached the channel
                while len(served := await _served_by(greeter, 20)) < 2:
                    pass
            print("served by:", sorted(served.items()))
    finally:
        for server in servers:
            await server.stop(grace=1)  # revokes the lease first: clients stop sending


async def _served_by(greeter: GreeterStub, calls: int) -> Counter[str]:
    replies = [await greeter.say_hello(HelloRequest(name="x"), timeout=5) for _ in range(calls)]
    return Counter(reply.message for reply in replies)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="etcd endpoint(s), h:p,h:p")
    asyncio.run(main(parser.parse_args().etcd))
