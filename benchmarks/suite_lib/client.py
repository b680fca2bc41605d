"""Child side, ``--client``: the load client. ``Client`` makes one stack's three call shapes,
``measure`` runs one closed-loop measurement of a cell, and ``client_main`` answers the
parent's jobs (one JSON line each on stdin) with rates and unary p99 latencies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import security
from .child import stack_messages
from .model import FIRST_CALL_TIMEOUT, MAX_CALLS, PATHS, STREAM_BATCH, Cell

__all__ = ["Client", "client_main", "measure", "p99_ms"]


class Client:
    """One stack's three call shapes: ``unary(req)``, ``server_stream(req) -> count``,
    ``bidi(reqs) -> count``; ``option`` a transport option (``security``)."""

    def __init__(
        self, stack: str, port: int, option: str | None = None, certs: Path | None = None
    ) -> None:
        security.check(stack, option)
        mod = stack_messages(stack)
        self.Req = mod.EchoRequest
        if stack.startswith("rpcfw"):
            channel = security.rpcfw_channel(port, option, certs)
            stub = mod.EchoStub(channel)
            self.unary = stub.unary

            async def server_stream(req):  # type: ignore[no-untyped-def]
                n = 0
                async for _ in stub.server_stream(req):
                    n += 1
                return n

            async def bidi(reqs):  # type: ignore[no-untyped-def]
                n = 0
                async for _ in stub.bidi(reqs):
                    n += 1
                return n

            self.close = channel.close
        elif stack == "grpclib":
            from grpclib.client import Channel
            from grpclib.const import Cardinality

            gchannel = Channel("127.0.0.1", port)
            Req, Resp = mod.EchoRequest, mod.EchoResponse

            async def unary(req):  # type: ignore[no-untyped-def]
                async with gchannel.request(
                    PATHS["unary"], Cardinality.UNARY_UNARY, Req, Resp
                ) as st:
                    await st.send_message(req, end=True)
                    return await st.recv_message()

            async def server_stream(req):  # type: ignore[no-untyped-def]
                n = 0
                async with gchannel.request(
                    PATHS["server-stream"], Cardinality.UNARY_STREAM, Req, Resp
                ) as st:
                    await st.send_message(req, end=True)
                    async for _ in st:
                        n += 1
                return n

            async def bidi(reqs):  # type: ignore[no-untyped-def]
                n = 0
                async with gchannel.request(
                    PATHS["bidi"], Cardinality.STREAM_STREAM, Req, Resp
                ) as st:
                    await st.send_request()

                    async def send() -> None:
                        async for r in reqs:
                            await st.send_message(r)
                        await st.end()

                    sender = asyncio.ensure_future(send())
                    async for _ in st:
                        n += 1
                    await sender
                return n

            async def gclose() -> None:
                gchannel.close()

            self.unary, self.close = unary, gclose
        else:
            achannel = security.grpc_channel(port, option, certs)
            ser, de = mod.EchoRequest.SerializeToString, mod.EchoResponse.FromString
            self.unary = achannel.unary_unary(
                PATHS["unary"], request_serializer=ser, response_deserializer=de
            )
            ss = achannel.unary_stream(
                PATHS["server-stream"], request_serializer=ser, response_deserializer=de
            )
            bd = achannel.stream_stream(
                PATHS["bidi"], request_serializer=ser, response_deserializer=de
            )

            async def server_stream(req):  # type: ignore[no-untyped-def]
                n = 0
                async for _ in ss(req):
                    n += 1
                return n

            async def bidi(reqs):  # type: ignore[no-untyped-def]
                n = 0
                async for _ in bd(reqs):
                    n += 1
                return n

            async def aclose() -> None:
                await achannel.close()

            self.close = aclose
        self.server_stream, self.bidi = server_stream, bidi


async def measure(
    client: Client,
    cell: Cell,
    duration: float,
    max_calls: int,
    latencies: list[float] | None = None,
) -> float:
    """Closed loop for ``duration`` seconds or ``max_calls`` calls (messages), whichever ends
    first: calls/s for unary, messages received/s for streams. Given ``latencies``, a unary
    measurement appends each call's latency (seconds) to it."""
    req = client.Req(payload=security.payload(cell.payload))
    done = 0
    deadline = time.perf_counter() + duration
    if cell.kind == "unary":
        per_worker = max(1, max_calls // cell.concurrency)

        async def worker() -> None:
            nonlocal done
            for _ in range(per_worker):
                await client.unary(req)
                done += 1
                if time.perf_counter() >= deadline:
                    return

        async def timed_worker(record: Callable[[float], None]) -> None:
            nonlocal done
            clock, call = time.perf_counter, client.unary
            for _ in range(per_worker):
                t0 = clock()
                await call(req)
                t1 = clock()
                record(t1 - t0)
                done += 1
                if t1 >= deadline:
                    return

        start = time.perf_counter()
        if latencies is None:
            await asyncio.gather(*(worker() for _ in range(cell.concurrency)))
        else:
            record = latencies.append
            await asyncio.gather(*(timed_worker(record) for _ in range(cell.concurrency)))
    else:
        batch = client.Req(payload=req.payload, count=STREAM_BATCH)

        async def requests():  # type: ignore[no-untyped-def]
            for _ in range(STREAM_BATCH):
                yield req

        start = time.perf_counter()
        while done < max_calls and time.perf_counter() < deadline:
            if cell.kind == "server-stream":
                done += await client.server_stream(batch)
            else:
                done += await client.bidi(requests())
    return done / (time.perf_counter() - start)


def p99_ms(latencies: list[float]) -> float:
    """The nearest-rank 99th percentile of latencies in seconds, in ms."""
    ordered = sorted(latencies)
    rank = max(1, -(-99 * len(ordered) // 100))  # ceil(0.99 n)
    return ordered[rank - 1] * 1000


async def client_main(stack: str) -> None:
    """Read one JSON job a line from stdin, answer one JSON result a line on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := await reader.readline():
        job = json.loads(line)
        cell = Cell(**job["cell"])
        result: dict[str, Any] = {}
        try:
            certs = Path(job["certs"]) if job.get("certs") else None
            client = Client(stack, job["port"], job.get("option"), certs)
            try:
                limit = job["warmup"] + job["duration"] + 30
                try:  # a stack that cannot connect fails in seconds, not at the limit
                    async with asyncio.timeout(FIRST_CALL_TIMEOUT):
                        await client.unary(client.Req())
                except Exception as exc:
                    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    raise RuntimeError(
                        f"first call failed ({FIRST_CALL_TIMEOUT:g} s): {why}"
                    ) from None
                latencies: list[float] | None = [] if cell.kind == "unary" else None
                async with asyncio.timeout(limit):
                    await measure(client, cell, job["warmup"], 2000)
                    rate = await measure(client, cell, job["duration"], MAX_CALLS, latencies)
                result["rate"] = rate
                if latencies:
                    result["p99_ms"] = p99_ms(latencies)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        print(json.dumps(result), flush=True)
