"""Interceptors: token auth (client adds it, server checks it), a deadline rule, a structured
access log, and two of your own (a client one that tags calls and reports their status, a
server one that counts calls per method).

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/interceptors.py
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw
from rpcfw.interceptors import (
    AccessLogServer,
    BearerTokenAuth,
    ClientCallInfo,
    ClientInterceptor,
    DeadlineGuard,
    ServerInterceptor,
    TokenAuthServer,
)


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        team = context.invocation_metadata.get_text("x-team")
        return HelloReply(message=f"Hello, {request.name} from {team}")


class CallsPerMethod(ServerInterceptor):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def start(self, context: rpcfw.CallContext) -> None:
        self.counts[context.method] += 1


class Tagging(ClientInterceptor):  # every hook is optional
    async def start(self, call: ClientCallInfo) -> None:
        call.metadata = call.metadata.with_item("x-team", "billing")

    def on_end(self, call: ClientCallInfo) -> None:
        print(f"  client saw {call.method} end with {call.status.name if call.status else None}")


async def main() -> None:
    counter = CallsPerMethod()
    server = rpcfw.Server(
        [Greeter()],
        # in order: the first is the outermost (it sees the others' refusals in on_end)
        interceptors=[AccessLogServer(), counter, TokenAuthServer({"s3cret"}), DeadlineGuard()],
    )
    await server.start("127.0.0.1", 0)
    try:
        good = [BearerTokenAuth("s3cret"), Tagging()]
        async with rpcfw.Channel(server.address, interceptors=good) as channel:
            reply = await GreeterStub(channel).say_hello(HelloRequest(name="ann"), timeout=5)
            print("with a token:", reply.message)
            try:  # DeadlineGuard: a call without a deadline is refused
                await GreeterStub(channel).say_hello(HelloRequest(name="ann"))
            except rpcfw.RpcError as error:
                print("without a deadline:", error.code.name, "-", error.message)

        bad = [BearerTokenAuth("guess"), Tagging()]
        async with rpcfw.Channel(server.address, interceptors=bad) as channel:
            try:
                await GreeterStub(channel).say_hello(HelloRequest(name="eve"), timeout=5)
            except rpcfw.RpcError as error:
                print("with a wrong token:", error.code.name)
    finally:
        await server.stop(grace=1)
    print("calls per method:", dict(counter.counts))


if __name__ == "__main__":
    # the access log: one line per call, fields in the record's extra (rpc_status, ...)
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="  log %(message)s")
    logging.getLogger("rpcfw.access").setLevel(logging.INFO)
    asyncio.run(main())
