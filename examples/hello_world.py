"""Hello world: a Greeter server and a client calling it, in one process.

rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
python examples/hello_world.py
"""

from __future__ import annotations

import asyncio

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        if not request.name:
            context.abort(rpcfw.Status.INVALID_ARGUMENT, "name is required")
        return HelloReply(message=f"Hello, {request.name}!")


async def main() -> None:
    server = rpcfw.Server([Greeter()])
    await server.start("127.0.0.1", 0)  # port 0: any free port (server.port)
    try:
        async with rpcfw.Channel(server.address) as channel:
            greeter = GreeterStub(channel)
            reply = await greeter.say_hello(HelloRequest(name="world"), timeout=5)
            print(reply.message)
            try:
                await greeter.say_hello(HelloRequest(), timeout=5)
            except rpcfw.RpcError as error:
                print(f"refused: {error.code.name}: {error.message}")
    finally:
        await server.stop(grace=1)


if __name__ == "__main__":
    asyncio.run(main())
