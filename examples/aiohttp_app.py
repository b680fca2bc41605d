"""An rpcfw server and channel inside an aiohttp web app: the gRPC Greeter starts and drains
with the app (a cleanup context), and an HTTP route calls it through a channel.

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/aiohttp_app.py --serve       # HTTP on :8080, gRPC on :50051
    curl localhost:8080/hello/ann

`python examples/aiohttp_app.py` runs it on free ports, calls the route once and exits.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import ClientSession, web
from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw

GREETER = web.AppKey("greeter", GreeterStub)


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message=f"Hello, {request.name}!")


def make_app(grpc_port: int) -> web.Application:
    async def grpc_side(app: web.Application) -> AsyncIterator[None]:
        server = rpcfw.Server([Greeter()])
        await server.start("127.0.0.1", grpc_port)
        async with rpcfw.Channel(server.address) as channel:
            app[GREETER] = GreeterStub(channel)
            yield
        await server.stop(grace=5)  # on shutdown: GOAWAY, calls in flight finish

    async def hello(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        reply = await request.app[GREETER].say_hello(HelloRequest(name=name), timeout=2)
        return web.json_response({"message": reply.message})

    app = web.Application()
    app.cleanup_ctx.append(grpc_side)
    app.router.add_get("/hello/{name}", hello)
    return app


async def main() -> None:
    runner = web.AppRunner(make_app(grpc_port=0))  # free ports for both
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/hello/ann"
        async with ClientSession() as http, http.get(url) as response:
            print("GET /hello/ann ->", await response.json())
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        web.run_app(make_app(grpc_port=50051), host="127.0.0.1", port=8080)
    else:
        asyncio.run(main())
