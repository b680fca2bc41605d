"""Where TLS's cost goes in rpcfw (issue 10): CPU time per call, not throughput.

    python benchmarks/tls_cost.py                     # 100 KiB unary, c=8, 5 rounds (~1 min)
    python benchmarks/tls_cost.py --grpc              # grpc.aio measured the same way, too
    python benchmarks/tls_cost.py --payload 0 --calls 20000

An rpcfw server and an rpcfw channel run in this one process and event loop, so a call's CPU
time (``time.process_time``) is both sides' work, measured without a second process to schedule
or pin: far steadier on a shared machine than the throughput of suite.py's two pinned
processes. Each round measures plaintext, then TLS (TLS 1.3, a trustme certificate), with
``--calls`` calls at ``--concurrency``; the report takes the median round. Beside it, OpenSSL's
own cost for the same bytes: ``ssl.SSLObject`` encrypting and decrypting the payload on memory
buffers (no event loop, no sockets), for one side and for both (each side encrypts what it sends
and decrypts what it receives). What TLS adds beyond that is asyncio's TLS layer
(``asyncio.sslproto``) and the copies through its buffers.

Report: ``benchmarks/results/<date>-tls-cost.md`` (printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from suite_lib import security
from suite_lib.model import PATHS, RESULTS, SERVICE
from suite_lib.processes import generate
from suite_lib.report import machine_info

import rpcfw


async def _timed_calls(unary: Callable[[], Awaitable[object]], args: argparse.Namespace) -> float:
    """Microseconds of this process's CPU per ``unary()`` call, ``args.calls`` calls at
    ``args.concurrency``, after 100 to connect, shake hands and warm caches."""

    async def worker(calls: int) -> None:
        for _ in range(calls):
            await unary()

    await worker(100)
    share = args.calls // args.concurrency
    started = time.process_time()
    await asyncio.gather(*(worker(share) for _ in range(args.concurrency)))
    return (time.process_time() - started) / (share * args.concurrency) * 1e6


async def cpu_per_call(
    mod: Any, option: str | None, certs: Path, args: argparse.Namespace
) -> float:
    """Microseconds of this process's CPU per call (both sides), after a warm-up."""

    class Echo(mod.EchoBase):  # type: ignore[misc,name-defined]
        async def unary(self, request, context):  # type: ignore[no-untyped-def]
            return mod.EchoResponse(payload=request.payload)

        async def server_stream(self, request, context):  # type: ignore[no-untyped-def]
            yield mod.EchoResponse()

        async def client_stream(self, requests, context):  # type: ignore[no-untyped-def]
            return mod.EchoResponse()

        async def bidi(self, requests, context):  # type: ignore[no-untyped-def]
            async for _ in requests:
                yield mod.EchoResponse()

    server = rpcfw.Server([Echo()])
    await server.start("127.0.0.1", 0, **security.rpcfw_start_kwargs(option, certs))
    channel = security.rpcfw_channel(server.port, option, certs)
    try:
        stub = mod.EchoStub(channel)
        request = mod.EchoRequest(payload=security.payload(args.payload))
        return await _timed_calls(lambda: stub.unary(request, timeout=30), args)
    finally:
        await channel.close()
        await server.stop(0)


async def grpc_cpu_per_call(
    pb: Any, option: str | None, certs: Path, args: argparse.Namespace
) -> float:
    """The same for a grpc.aio server and a grpc.aio channel in this process (its CPU time
    includes grpc's C-core threads)."""
    import grpc

    async def unary(request: Any, context: Any) -> Any:
        return pb.EchoResponse(payload=request.payload)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(
                unary, pb.EchoRequest.FromString, pb.EchoResponse.SerializeToString
            )
        },
    )
    server = security.grpc_server(None)
    server.add_generic_rpc_handlers((handler,))
    port = security.grpc_add_port(server, option, certs)
    await server.start()
    channel = security.grpc_channel(port, option, certs)
    try:
        call = channel.unary_unary(
            PATHS["unary"], pb.EchoRequest.SerializeToString, pb.EchoResponse.FromString
        )
        request = pb.EchoRequest(payload=security.payload(args.payload))
        return await _timed_calls(lambda: call(request, timeout=30), args)
    finally:
        await channel.close()
        await server.stop(0)


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    generate(tmp)
    sys.path.insert(0, str(tmp))
    import bench_pb.echo.v1.echo_pb2 as pb  # the same messages, for grpc.aio
    import bench_pb.echo.v1.echo_rpcfw as mod  # generated just above

    certs = security.make_certs(tmp / "certs")
    rounds: dict[str, list[float]] = {"plaintext": [], "tls": []}
    grpc_rounds: dict[str, list[float]] = {"plaintext": [], "tls": []}
    for _ in range(args.rounds):
        rounds["plaintext"].append(await cpu_per_call(mod, None, certs, args))
        rounds["tls"].append(await cpu_per_call(mod, "tls", certs, args))
        if args.grpc:
            grpc_rounds["plaintext"].append(await grpc_cpu_per_call(pb, None, certs, args))
            grpc_rounds["tls"].append(await grpc_cpu_per_call(pb, "tls", certs, args))
    cipher = security.cipher_cost(certs, max(args.payload, 1))
    return {"rounds": rounds, "grpc_rounds": grpc_rounds, "cipher": cipher}


def render(data: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    plain = statistics.median(data["rounds"]["plaintext"])
    tls = statistics.median(data["rounds"]["tls"])
    cipher = data["cipher"]
    added, both = tls - plain, 2 * cipher["us"]
    size = f"{args.payload // 1024} KiB" if args.payload >= 1024 else f"{args.payload} B"
    lines = [
        f"# Where TLS's cost goes in rpcfw, {data['date']}",
        "",
        f"Command: `{command}`.",
        "",
        f"Unary calls with {size} each way, concurrency {args.concurrency}, {args.calls:,} "
        f"calls per round, {args.rounds} rounds; server and channel in one process (CPU time "
        "per call is both sides' work). Medians over rounds; each round's values in brackets.",
        "",
        "| | CPU per call (both sides) |",
        "|---|---|",
        f"| plaintext | {plain:.0f} µs ({_each(data['rounds']['plaintext'])}) |",
        f"| TLS | {tls:.0f} µs ({_each(data['rounds']['tls'])}) |",
        f"| TLS adds | {added:.0f} µs ({added / plain:.0%} of plaintext) |",
        f"| OpenSSL alone ({cipher['cipher']}): one side encrypts and decrypts {size} | "
        f"{cipher['us']:.0f} µs |",
        f"| the same for both sides | {both:.0f} µs ({both / added:.0%} of what TLS adds) |",
        *_grpc_lines(data),
        "",
        "The OpenSSL figure is a best case (the fastest of 5 batches on warm memory buffers); "
        "what TLS adds beyond it is the memory BIOs' copies, asyncio's TLS layer and OpenSSL "
        "costing more in the real path than on warm buffers (see the README's Benchmark).",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in data["machine"].items()),
    ]
    return "\n".join(lines) + "\n"


def _grpc_lines(data: dict[str, Any]) -> list[str]:
    """grpc.aio's figures and both stacks' CPU share (plaintext CPU over TLS CPU: the CPU
    analogue of issue 10's throughput share), when ``--grpc`` measured them."""
    grpc_rounds = data["grpc_rounds"]
    if not grpc_rounds["tls"]:
        return []
    plain, tls = (statistics.median(grpc_rounds[k]) for k in ("plaintext", "tls"))
    ours = _shares(data["rounds"])
    theirs = _shares(grpc_rounds)
    return [
        "",
        "| grpc.aio, same process | CPU per call (both sides, C-core threads included) |",
        "|---|---|",
        f"| plaintext | {plain:.0f} µs ({_each(grpc_rounds['plaintext'])}) |",
        f"| TLS | {tls:.0f} µs ({_each(grpc_rounds['tls'])}) |",
        f"| TLS adds | {tls - plain:.0f} µs |",
        "",
        "What TLS leaves of plaintext throughput if CPU-bound (plaintext CPU / TLS CPU, per "
        "round: the two measurements of a round ran back to back; median and range):",
        "",
        "| stack | share | per round |",
        "|---|---|---|",
        f"| rpcfw | {statistics.median(ours):.0%} | {_percents(ours)} |",
        f"| grpc.aio | {statistics.median(theirs):.0%} | {_percents(theirs)} |",
    ]


def _shares(rounds: dict[str, list[float]]) -> list[float]:
    return [p / t for p, t in zip(rounds["plaintext"], rounds["tls"], strict=True)]


def _percents(values: list[float]) -> str:
    return ", ".join(f"{v:.0%}" for v in values)


def _each(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--payload", type=int, default=100 * 1024, help="bytes each way")
    parser.add_argument("--calls", type=int, default=4000, help="calls per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--grpc", action="store_true", help="also measure a grpc.aio server and channel"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpcfw-tls-cost-") as tmpdir:
        if args.loop == "uvloop":
            import uvloop

            data = uvloop.run(measure(args, Path(tmpdir)))
        else:
            data = asyncio.run(measure(args, Path(tmpdir)))
    data["date"] = dt.date.today().isoformat()
    data["machine"] = machine_info()
    data["machine"]["cores"] = "2 (one process, not pinned)"
    data["machine"]["event loop"] = args.loop
    command = "python benchmarks/tls_cost.py " + " ".join(sys.argv[1:])
    report = render(data, args, command.strip())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{data['date']}-tls-cost-{args.loop}.md"
    path.write_text(report)
    print(report)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
