"""Retries from a service config (gRPC's A6): a flaky server fails the first two attempts of
each call with UNAVAILABLE; the channel retries with backoff and the caller sees one success.
The server sees `grpc-previous-rpc-attempts` on each retry.

Retries apply to methods the proto marks idempotent (`option idempotency_level = IDEMPOTENT`
or `NO_SIDE_EFFECTS`) unless the method config says `"retryNonIdempotent": true`, as here
(SayHello has no side effects, but helloworld.proto does not say so).

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/retries.py
"""

from __future__ import annotations

import asyncio

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw

SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "helloworld.Greeter", "method": "SayHello"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
            "retryNonIdempotent": True,
            "timeout": "5s",  # for the whole call, all attempts included
        }
    ],
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}


class FlakyGreeter(GreeterBase):
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, list[str | None]] = {}

    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        seen = self.attempts.setdefault(request.name, [])
        seen.append(context.invocation_metadata.get_text("grpc-previous-rpc-attempts"))
        if len(seen) <= self.failures:
            context.abort(rpcfw.Status.UNAVAILABLE, f"attempt {len(seen)} fails")
        return HelloReply(message=f"Hello, {request.name} (attempt {len(seen)})")


async def main() -> None:
    greeter = FlakyGreeter(failures=2)
    server = rpcfw.Server([greeter])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address, service_config=SERVICE_CONFIG) as channel:
            reply = await GreeterStub(channel).say_hello(HelloRequest(name="ann"))
            print(reply.message)
            print("grpc-previous-rpc-attempts per attempt:", greeter.attempts["ann"])
    finally:
        await server.stop(grace=1)


if __name__ == "__main__":
    asyncio.run(main())
