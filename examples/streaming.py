"""The four call kinds on the Echo service: unary, server streaming, client streaming, bidi.

rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
python examples/streaming.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gen.echo.v1.echo_rpcfw import EchoBase, EchoRequest, EchoResponse, EchoStub

import rpcfw


class Echo(EchoBase):
    async def unary(self, request: EchoRequest, context: rpcfw.CallContext) -> EchoResponse:
        return EchoResponse(message=request.message)

    async def server_stream(
        self, request: EchoRequest, context: rpcfw.CallContext
    ) -> AsyncIterator[EchoResponse]:
        for index in range(request.count):
            yield EchoResponse(message=request.message, index=index)

    async def client_stream(
        self, requests: AsyncIterator[EchoRequest], context: rpcfw.CallContext
    ) -> EchoResponse:
        return EchoResponse(message=" ".join([r.message async for r in requests]))

    async def bidi(
        self, requests: AsyncIterator[EchoRequest], context: rpcfw.CallContext
    ) -> AsyncIterator[EchoResponse]:
        async for request in requests:
            yield EchoResponse(message=request.message.upper())


async def main() -> None:
    server = rpcfw.Server([Echo()])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            echo = EchoStub(channel)
            reply = await echo.unary(EchoRequest(message="hi"), timeout=5)
            print("unary:", reply.message)

            indexes = [r.index async for r in echo.server_stream(EchoRequest(message="x", count=3))]
            print("server streaming:", indexes)

            words = [EchoRequest(message=w) for w in ("one", "two", "three")]
            print("client streaming:", (await echo.client_stream(words)).message)

            async with echo.bidi() as stream:  # send and receive as you go
                for word in ("ping", "pong"):
                    await stream.send(EchoRequest(message=word))
                    answer = await stream.recv()
                    print("bidi:", word, "->", answer.message if answer else None)
                await stream.done_writing()
                print("bidi status:", (await stream.recv(), stream.status))
    finally:
        await server.stop(grace=1)


if __name__ == "__main__":
    asyncio.run(main())
