"""Unary echo throughput: rpcfw vs plain grpclib vs grpc.aio, as ratios from one run.

Each pair runs its server and client in separate processes, pinned to separate cores (server
on core 0, client on core 1). Pairs are interleaved and repeated; the report gives medians and
the ratio against grpc.aio server + grpc.aio client measured in the same run. Messages are
protobuf (upb) for every pair, so the comparison is of the RPC layers. The pair "grpclib server
+ rpcfw round_robin channel (1 endpoint)" against "grpclib + grpclib" is the cost of rpcfw's
balanced client alone; "rpcfw server + grpclib client" isolates rpcfw's server.

    python benchmarks/unary_peers.py [--calls 4000] [--repeats 3] [--concurrency 1 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (label, server, client): clients "rpcfw" use pick_first, "rpcfw-rr" round_robin
PAIRS = (
    ("grpc.aio + grpc.aio", "grpc.aio", "grpc.aio"),
    ("grpclib + grpclib", "grpclib", "grpclib"),
    ("rpcfw + rpcfw", "rpcfw", "rpcfw"),
    ("grpclib server + rpcfw round_robin channel", "grpclib", "rpcfw-rr"),
    ("rpcfw server + grpclib client", "rpcfw", "grpclib"),
)
SERVICE, METHOD = "echo.v1.Echo", "Unary"
PATH = f"/{SERVICE}/{METHOD}"


def _generate(tmp: Path) -> None:
    from rpcfw_codegen import Backend, generate_tree

    generate_tree(
        [ROOT / "proto"], tmp / "bench_gen", includes=[ROOT / "proto"], backend=Backend.PROTOBUF
    )


def _messages(gen_root: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, gen_root)
    from bench_gen.echo.v1 import echo_rpcfw

    return echo_rpcfw


async def _serve(stack: str, gen_root: str) -> None:
    mod = _messages(gen_root)
    Req, Resp = mod.EchoRequest, mod.EchoResponse
    if stack == "rpcfw":
        import rpcfw

        class Echo(mod.EchoBase):  # type: ignore[misc,name-defined]
            async def unary(self, request, context):  # type: ignore[no-untyped-def]
                return Resp(message=request.message)

            async def server_stream(self, request, context):  # type: ignore[no-untyped-def]
                yield Resp()

            async def client_stream(self, requests, context):  # type: ignore[no-untyped-def]
                return Resp()

            async def bidi(self, requests, context):  # type: ignore[no-untyped-def]
                yield Resp()

        server = rpcfw.Server([Echo()])
        await server.start("127.0.0.1", 0)
        print(server.port, flush=True)
        await server.serve_forever()
    elif stack == "grpclib":
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        class GEcho:
            async def unary(self, stream):  # type: ignore[no-untyped-def]
                request = await stream.recv_message()
                await stream.send_message(Resp(message=request.message))

            def __mapping__(self):  # type: ignore[no-untyped-def]
                return {PATH: Handler(self.unary, Cardinality.UNARY_UNARY, Req, Resp)}

        gserver = Server([GEcho()])
        await gserver.start("127.0.0.1", 0)
        print(gserver._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.Event().wait()
    else:
        import grpc

        async def unary(request, context):  # type: ignore[no-untyped-def]
            return Resp(message=request.message)

        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                METHOD: grpc.unary_unary_rpc_method_handler(
                    unary, Req.FromString, Resp.SerializeToString
                )
            },
        )
        aserver = grpc.aio.server()
        aserver.add_generic_rpc_handlers((handler,))
        port = aserver.add_insecure_port("127.0.0.1:0")
        await aserver.start()
        print(port, flush=True)
        await aserver.wait_for_termination()


async def _load(stack: str, gen_root: str, port: int, calls: int, concurrency: int) -> float:
    mod = _messages(gen_root)
    request = mod.EchoRequest()
    if stack in ("rpcfw", "rpcfw-rr"):
        import rpcfw

        balancer = "round_robin" if stack == "rpcfw-rr" else "pick_first"
        channel = rpcfw.Channel(f"127.0.0.1:{port}", balancer=balancer)
        stub = mod.EchoStub(channel)
        call = stub.unary
        close = channel.close
    elif stack == "grpclib":
        from grpclib.client import Channel
        from grpclib.const import Cardinality

        gchannel = Channel("127.0.0.1", port)

        async def call(req):  # type: ignore[no-untyped-def]
            async with gchannel.request(
                PATH, Cardinality.UNARY_UNARY, mod.EchoRequest, mod.EchoResponse
            ) as st:
                await st.send_message(req, end=True)
                return await st.recv_message()

        async def close() -> None:
            gchannel.close()
    else:
        import grpc

        achannel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        call = achannel.unary_unary(
            PATH,
            request_serializer=mod.EchoRequest.SerializeToString,
            response_deserializer=mod.EchoResponse.FromString,
        )

        async def close() -> None:
            await achannel.close()

    for _ in range(200):  # warm up
        await call(request)
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call(request)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await close()
    return per_worker * concurrency / elapsed


def _pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if os.cpu_count() and os.cpu_count() > 1 else []  # type: ignore[operator]


def _measure(
    server_stack: str, client_stack: str, gen_root: str, calls: int, concurrency: int
) -> float:
    server = subprocess.Popen(
        [*_pinned(0), sys.executable, __file__, "--serve", server_stack, "--gen-root", gen_root],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        out = subprocess.run(
            [
                *_pinned(1),
                sys.executable,
                __file__,
                "--load",
                client_stack,
                "--gen-root",
                gen_root,
                "--port",
                str(port),
                "--calls",
                str(calls),
                "--concurrency",
                str(concurrency),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--serve")
    parser.add_argument("--load")
    parser.add_argument("--gen-root")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.gen_root))
        return
    if args.load:
        print(
            asyncio.run(_load(args.load, args.gen_root, args.port, args.calls, args.concurrency[0]))
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for concurrency in args.concurrency:
                for label, server_stack, client_stack in PAIRS:  # interleaved
                    qps = _measure(server_stack, client_stack, tmp, args.calls, concurrency)
                    results.setdefault((label, concurrency), []).append(qps)
    header = (
        "| server + client | " + " | ".join(f"unary 0 B c={c}" for c in args.concurrency) + " |"
    )
    print(header)
    print("|---" * (len(args.concurrency) + 1) + "|")
    for label, _, _ in PAIRS:
        cells = []
        for c in args.concurrency:
            runs = results[(label, c)]
            base = statistics.median(results[(PAIRS[0][0], c)])
            med = statistics.median(runs)
            spread = (max(runs) - min(runs)) / med * 100
            cells.append(f"{med:,.0f}/s ±{spread:.0f}% ({med / base:.2f}x)")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
