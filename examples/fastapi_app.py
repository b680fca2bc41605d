"""An rpcfw server and channel inside a FastAPI app: the gRPC Greeter is served next to the
HTTP API (started and drained by the app's lifespan), and an HTTP route calls it through a
channel.

    pip install fastapi uvicorn
    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    cd examples && uvicorn fastapi_app:app       # HTTP on :8000, gRPC on :50051
    curl localhost:8000/hello/ann

`python examples/fastapi_app.py` runs it on free ports, calls the route once and exits.
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw

GRPC_PORT = int(os.environ.get("GRPC_PORT", "50051"))


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message=f"Hello, {request.name}!")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    server = rpcfw.Server([Greeter()])
    await server.start("127.0.0.1", GRPC_PORT)
    async with rpcfw.Channel(server.address) as channel:  # or any other service's address
        app.state.greeter = GreeterStub(channel)
        yield
    await server.stop(grace=5)  # on shutdown: GOAWAY, calls in flight finish


app = FastAPI(lifespan=lifespan)


@app.get("/hello/{name}")
async def hello(name: str, request: Request) -> dict[str, str]:
    greeter: GreeterStub = request.app.state.greeter
    reply = await greeter.say_hello(HelloRequest(name=name), timeout=2)
    return {"message": reply.message}


async def main() -> None:
    global GRPC_PORT
    GRPC_PORT = 0  # any free port
    listener = socket.create_server(("127.0.0.1", 0))  # bound and listening: no race
    port = listener.getsockname()[1]
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(http.serve(sockets=[listener]))
    try:
        url = f"http://127.0.0.1:{port}/hello/ann"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        print("GET /hello/ann ->", body.decode())
    finally:
        http.should_exit = True
        await serving


if __name__ == "__main__":
    asyncio.run(main())
