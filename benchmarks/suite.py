"""Peer benchmark suite: rpcfw against plain grpclib and grpc.aio, as ratios from one run.

    python benchmarks/suite.py --quick                  # everyday use, about 2 minutes
    python benchmarks/suite.py --full                   # the whole matrix
    python benchmarks/suite.py --profile rpcfw-server   # where an rpcfw server's CPU goes

Stacks (each a server and a client): rpcfw with betterproto2 messages, rpcfw with protobuf
messages, plain grpclib (protobuf), grpc.aio (protobuf). Every server and client runs in its own
process; servers are pinned to core 0 and clients to core 1 (``taskset``). Servers bind
127.0.0.1 only. The main table pairs the same stack on both sides; two cross pairs isolate
rpcfw's server (rpcfw server + grpclib client) and rpcfw's client (grpclib server + rpcfw
client) against grpclib + grpclib with the same protobuf messages.

Cells: unary echo with 0 B / 1 KiB / 100 KiB payloads at concurrency 1, 16, 64 (and 100 KiB at
8) (calls/s over one connection, plus the p99 of the measured calls' latencies as the client saw
them), server streaming and bidi (messages/s, one stream at a time, 0 B payloads), under the
default asyncio loop and uvloop. Unary payloads are compressible text
(``suite_security.payload``). Within a repeat every cell runs each pair back to
back (the pair order rotates between repeats), so a pair's ratio against grpc.aio server +
grpc.aio client comes from the same minutes of a noisy machine. Each measurement is bounded by
count and by time. The report gives medians, spread ((max - min) / median) and ratios, and is
written to ``benchmarks/results/<date>-<mode>.md`` (or ``--name``; plus ``.json`` and a
``.png`` chart if matplotlib is installed).

Transport options (``benchmarks/suite_security.py``): the rpcfw (protobuf) and grpc.aio pairs
run again over TLS and again with gzip compression, on a few cells each; their ratios are
against grpc.aio with the same option, and the report adds each one's throughput as a share
of the same pair in plaintext.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import suite_security as security

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SERVICE = "echo.v1.Echo"
PATHS = {
    "unary": f"/{SERVICE}/Unary",
    "server-stream": f"/{SERVICE}/ServerStream",
    "bidi": f"/{SERVICE}/Bidi",
}
STACKS = ("rpcfw-bp", "rpcfw-pb", "grpclib", "grpc.aio")
BASELINE = "grpc.aio + grpc.aio"


class Pair(NamedTuple):
    label: str
    server: str  # stack
    client: str  # stack
    option: str | None = None  # a transport option (suite_security.OPTIONS): "tls", "gzip"


# the baseline first
PLAINTEXT_PAIRS = (
    Pair(BASELINE, "grpc.aio", "grpc.aio"),
    Pair("grpclib + grpclib", "grpclib", "grpclib"),
    Pair("rpcfw + rpcfw (protobuf)", "rpcfw-pb", "rpcfw-pb"),
    Pair("rpcfw + rpcfw (betterproto2)", "rpcfw-bp", "rpcfw-bp"),
    Pair("rpcfw server + grpclib client", "rpcfw-pb", "grpclib"),
    Pair("grpclib server + rpcfw client", "grpclib", "rpcfw-pb"),
)
WITH_OPTIONS = (BASELINE, "rpcfw + rpcfw (protobuf)")  # pairs run again with each option
PAIRS = (
    *PLAINTEXT_PAIRS,
    *(
        Pair(pair.label + option.suffix, pair.server, pair.client, option.name)
        for option in security.OPTIONS.values()
        for pair in PLAINTEXT_PAIRS
        if pair.label in WITH_OPTIONS
    ),
)
STREAM_BATCH = 1000  # messages per server-streaming / bidi call
MAX_CALLS = 1_000_000  # count bound of one measurement (time is the other)
FIRST_CALL_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Cell:
    kind: str  # "unary", "server-stream" or "bidi"
    payload: int = 0
    concurrency: int = 1

    @property
    def name(self) -> str:
        if self.kind != "unary":
            return f"{self.kind} msg/s"
        size = {0: "0 B", 1024: "1 KiB", 100 * 1024: "100 KiB"}.get(self.payload)
        return f"unary {size or f'{self.payload} B'} c={self.concurrency}"


ALL_CELLS = (
    *(Cell("unary", payload, concurrency) for payload in (0, 1024) for concurrency in (1, 16, 64)),
    *(Cell("unary", 100 * 1024, concurrency) for concurrency in (1, 8, 16, 64)),
    Cell("server-stream"),
    Cell("bidi"),
)


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    loops: tuple[str, ...]
    cells: tuple[Cell, ...]
    duration: float  # seconds measured per measurement
    warmup: float  # seconds of warm-up calls before it
    repeats: int


QUICK = Mode(
    "quick",
    ("asyncio",),
    (
        Cell("unary", 0, 1),
        Cell("unary", 0, 64),
        Cell("unary", 100 * 1024, 8),
        Cell("server-stream"),
        Cell("bidi"),
    ),
    duration=0.7,
    warmup=0.15,
    repeats=3,
)
FULL = Mode("full", ("asyncio", "uvloop"), ALL_CELLS, duration=2.0, warmup=0.3, repeats=3)
PROFILE_CELL = Cell("unary", 0, 64)


# ----------------------------------------------------------------------------------------
# child side: servers and load clients (each its own process)


def _messages(stack: str) -> Any:
    if stack == "rpcfw-bp":
        from bench_bp.echo.v1 import echo_rpcfw  # type: ignore[import-not-found]

        return echo_rpcfw
    from bench_pb.echo.v1 import echo_rpcfw  # type: ignore[import-not-found]

    return echo_rpcfw


def _run(loop: str, main: Callable[[], Any]) -> None:
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def _exit_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """The parent holds our stdin: when it closes (or dies), stop; exit hard if stopping hangs."""

    def watch() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


async def _serve(
    stack: str, profile_out: str | None, option: str | None = None, certs: Path | None = None
) -> None:
    security.check(stack, option)
    mod = _messages(stack)
    Req, Resp = mod.EchoRequest, mod.EchoResponse
    stop = asyncio.Event()
    _exit_on_stdin_eof(asyncio.get_running_loop(), stop)
    if stack.startswith("rpcfw"):
        import rpcfw

        class Echo(mod.EchoBase):  # type: ignore[misc,name-defined]
            async def unary(self, request, context):  # type: ignore[no-untyped-def]
                return Resp(payload=request.payload)

            async def server_stream(self, request, context):  # type: ignore[no-untyped-def]
                for _ in range(request.count):
                    yield Resp(payload=request.payload)

            async def client_stream(self, requests, context):  # type: ignore[no-untyped-def]
                async for _ in requests:
                    pass
                return Resp()

            async def bidi(self, requests, context):  # type: ignore[no-untyped-def]
                async for request in requests:
                    yield Resp(payload=request.payload)

        server = rpcfw.Server([Echo()], **security.rpcfw_server_kwargs(option))
        await server.start("127.0.0.1", 0, **security.rpcfw_start_kwargs(option, certs))
        port = server.port
    elif stack == "grpclib":
        from grpclib.const import Cardinality, Handler
        from grpclib.server import Server

        class GEcho:
            async def unary(self, stream):  # type: ignore[no-untyped-def]
                request = await stream.recv_message()
                await stream.send_message(Resp(payload=request.payload))

            async def server_stream(self, stream):  # type: ignore[no-untyped-def]
                request = await stream.recv_message()
                for _ in range(request.count):
                    await stream.send_message(Resp(payload=request.payload))

            async def bidi(self, stream):  # type: ignore[no-untyped-def]
                async for request in stream:
                    await stream.send_message(Resp(payload=request.payload))

            def __mapping__(self):  # type: ignore[no-untyped-def]
                return {
                    PATHS["unary"]: Handler(self.unary, Cardinality.UNARY_UNARY, Req, Resp),
                    PATHS["server-stream"]: Handler(
                        self.server_stream, Cardinality.UNARY_STREAM, Req, Resp
                    ),
                    PATHS["bidi"]: Handler(self.bidi, Cardinality.STREAM_STREAM, Req, Resp),
                }

        gserver = Server([GEcho()])
        await gserver.start("127.0.0.1", 0)
        port = gserver._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    else:
        import grpc

        async def unary(request, context):  # type: ignore[no-untyped-def]
            return Resp(payload=request.payload)

        async def server_stream(request, context):  # type: ignore[no-untyped-def]
            for _ in range(request.count):
                yield Resp(payload=request.payload)

        async def bidi(requests, context):  # type: ignore[no-untyped-def]
            async for request in requests:
                yield Resp(payload=request.payload)

        de, ser = Req.FromString, Resp.SerializeToString
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary, de, ser),
                "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, de, ser),
                "Bidi": grpc.stream_stream_rpc_method_handler(bidi, de, ser),
            },
        )
        aserver = security.grpc_server(option)
        aserver.add_generic_rpc_handlers((handler,))
        port = security.grpc_add_port(aserver, option, certs)
        await aserver.start()
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    print(port, flush=True)
    await stop.wait()
    if profiler is not None and profile_out:
        profiler.disable()
        profiler.dump_stats(profile_out)
    sys.stdout.flush()
    os._exit(0)


class _Client:
    """One stack's three call shapes: ``unary(req)``, ``server_stream(req) -> count``,
    ``bidi(reqs) -> count``; ``option`` a transport option (``suite_security``)."""

    def __init__(
        self, stack: str, port: int, option: str | None = None, certs: Path | None = None
    ) -> None:
        security.check(stack, option)
        mod = _messages(stack)
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


async def _measure(
    client: _Client,
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


def _p99_ms(latencies: list[float]) -> float:
    """The nearest-rank 99th percentile of latencies in seconds, in ms."""
    ordered = sorted(latencies)
    rank = max(1, -(-99 * len(ordered) // 100))  # ceil(0.99 n)
    return ordered[rank - 1] * 1000


async def _client_main(stack: str) -> None:
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
            client = _Client(stack, job["port"], job.get("option"), certs)
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
                    await _measure(client, cell, job["warmup"], 2000)
                    rate = await _measure(client, cell, job["duration"], MAX_CALLS, latencies)
                result["rate"] = rate
                if latencies:
                    result["p99_ms"] = _p99_ms(latencies)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------
# parent side: process management


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when its parent dies (outlier.py and
    discovery_faults.py use it for their server processes too)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pinned(core: int) -> list[str]:
    cpus = os.cpu_count() or 1
    return ["taskset", "-c", str(core % cpus)] if cpus > 1 else []


class Child:
    """A child process talking JSON lines over pipes; every read has a timeout."""

    live: ClassVar[list[Child]] = []

    def __init__(self, argv: list[str], core: int, gen_root: str, log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([gen_root, str(ROOT)]))
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [*_pinned(core), sys.executable, __file__, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                preexec_fn=die_with_parent,
            )
        self._buf = b""
        Child.live.append(self)

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer in {timeout:.0f}s; {self.tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"child exited ({self.proc.poll()}); {self.tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def tail(self) -> str:
        try:
            return "stderr: " + self.log.read_text(errors="replace")[-800:].strip()
        except OSError:
            return ""

    def stop(self, wait: float = 5.0) -> None:
        """Close stdin (the child's cue to exit), then kill it if it lingers."""
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self in Child.live:
            Child.live.remove(self)

    @classmethod
    def kill_all(cls) -> None:
        for child in list(cls.live):
            with contextlib.suppress(Exception):
                child.proc.kill()
                child.proc.wait(5)
        cls.live.clear()


def _on_signal(signum: int, frame: Any) -> None:
    Child.kill_all()
    sys.exit(128 + signum)


def _generate(tmp: Path) -> None:
    from rpcfw_codegen import Backend, generate_tree

    proto = ROOT / "proto"
    generate_tree([proto], tmp / "bench_pb", includes=[proto], backend=Backend.PROTOBUF)
    generate_tree([proto], tmp / "bench_bp", includes=[proto], backend=Backend.BETTERPROTO2)


def _start_server(
    stack: str,
    loop: str,
    tmp: Path,
    profile_out: str | None = None,
    option: str | None = None,
    certs: Path | None = None,
) -> Child:
    argv = ["--serve", stack, "--loop", loop]
    if profile_out:
        argv += ["--cprofile-out", profile_out]
    if option:
        argv += ["--option", option, *(("--certs", str(certs)) if certs else ())]
    name = f"{stack}-{option}" if option else stack
    child = Child(argv, 0, str(tmp), tmp / f"server-{name}-{loop}.log")
    child.port = int(child.readline(60))  # type: ignore[attr-defined]
    return child


def _start_client(stack: str, loop: str, tmp: Path) -> Child:
    child = Child(
        ["--client", stack, "--loop", loop], 1, str(tmp), tmp / f"client-{stack}-{loop}.log"
    )
    if child.readline(60) != "ready":
        raise RuntimeError(f"client {stack} did not start; {child.tail()}")
    return child


def _run_job(
    client: Child,
    port: int,
    cell: Cell,
    mode: Mode,
    option: str | None = None,
    certs: Path | None = None,
) -> dict[str, Any]:
    job = {"port": port, "cell": asdict(cell), "duration": mode.duration, "warmup": mode.warmup}
    if option:
        job.update(option=option, certs=str(certs) if certs else None)
    client.send(job)
    result: dict[str, Any] = json.loads(client.readline(mode.duration + mode.warmup + 60))
    return result


# ----------------------------------------------------------------------------------------
# the matrix


def _last_line(child: Child) -> str:
    lines = [line.strip() for line in child.tail().splitlines() if line.strip()]
    return " / ".join(lines[-2:])[-300:] if len(lines) > 1 else "(nothing)"


def _uvloop_available() -> str | None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "uvloop is not installed (`pip install uvloop`): uvloop rows skipped"
    return None


def _runs(pair: Pair, cell: Cell) -> bool:
    return pair.option is None or cell.name in security.OPTIONS[pair.option].cells


def run_matrix(mode: Mode, pairs: Sequence[Pair], tmp: Path) -> dict[str, Any]:
    notes: list[str] = []
    loops = list(mode.loops)
    if "uvloop" in loops and (why := _uvloop_available()):
        loops.remove("uvloop")
        notes.append(why)
    # results[loop][cell][pair] = list of rates; p99[loop][cell][pair] = list of unary p99s
    # (ms); errors[loop][cell][pair] = messages
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    p99: dict[str, dict[str, dict[str, list[float]]]] = {}
    errors: dict[str, dict[str, dict[str, list[str]]]] = {}
    broken: dict[tuple[str, str], str] = {}
    pairs = [p for p in pairs if any(_runs(p, cell) for cell in mode.cells)]
    # one server process per (stack, option); a client process per stack serves every option
    servers_needed = sorted({(p.server, p.option) for p in pairs}, key=str)
    clients_needed = sorted({p.client for p in pairs})
    certs = None
    cipher = None
    if any(p.option == "tls" for p in pairs):
        certs = security.make_certs(tmp / "certs")
        cipher = security.cipher_cost(certs)
    total = len(loops) * mode.repeats * sum(_runs(p, c) for p in pairs for c in mode.cells)
    done = 0
    started = time.monotonic()
    for loop in loops:
        servers = {
            (stack, option): _start_server(stack, loop, tmp, option=option, certs=certs)
            for stack, option in servers_needed
        }
        clients = {c: _start_client(c, loop, tmp) for c in clients_needed}
        try:
            for repeat in range(mode.repeats):
                order = list(pairs[repeat % len(pairs) :]) + list(pairs[: repeat % len(pairs)])
                for cell in mode.cells:
                    for pair in order:
                        label, server, client, option = pair
                        if (loop, label) in broken or not _runs(pair, cell):
                            continue
                        port = servers[(server, option)].port  # type: ignore[attr-defined]
                        try:
                            out = _run_job(clients[client], port, cell, mode, option, certs)
                        except (TimeoutError, RuntimeError) as exc:
                            out = {"error": str(exc)[:300]}
                            clients[client].stop(1)
                            clients[client] = _start_client(client, loop, tmp)
                        slot = results.setdefault(loop, {}).setdefault(cell.name, {})
                        if "rate" in out:
                            slot.setdefault(label, []).append(out["rate"])
                            if "p99_ms" in out:
                                p99.setdefault(loop, {}).setdefault(cell.name, {}).setdefault(
                                    label, []
                                ).append(out["p99_ms"])
                        else:
                            errors.setdefault(loop, {}).setdefault(cell.name, {}).setdefault(
                                label, []
                            ).append(out["error"])
                            if "first call" in out["error"]:
                                # never worked under this loop: skip its remaining cells
                                broken[(loop, label)] = out["error"]
                                notes.append(
                                    f"{label} under {loop}: skipped after `{out['error']}`; "
                                    f"its cells read 'failed'. Server stderr ends: "
                                    f"`{_last_line(servers[(server, option)])}`; "
                                    f"client stderr ends: "
                                    f"`{_last_line(clients[client])}`"
                                )
                        done += 1
                        print(
                            f"\r[{done}/{total}] {time.monotonic() - started:5.0f}s {loop} "
                            f"r{repeat + 1} {cell.name:<22} {label:<32}",
                            end="",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for child in (*clients.values(), *servers.values()):
                child.stop()
    print(file=sys.stderr)
    return {
        "mode": mode.name,
        "loops": loops,
        "cells": [c.name for c in mode.cells],
        "pairs": [p.label for p in pairs],
        # option rows: label -> option, and the cells each ran
        "options": {p.label: p.option for p in pairs if p.option},
        "option_cells": {
            p.label: [c.name for c in mode.cells if _runs(p, c)] for p in pairs if p.option
        },
        "results": results,
        "cipher_cost": cipher,  # OpenSSL alone, one side of a 100 KiB unary call (TLS runs)
        "p99_ms": p99,
        "errors": errors,
        "notes": notes,
        "elapsed_s": round(time.monotonic() - started, 1),
        "duration_s": mode.duration,
        "repeats": mode.repeats,
    }


# ----------------------------------------------------------------------------------------
# report


def machine_info() -> dict[str, str]:
    from importlib import metadata

    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for dist in ("rpcfw", "grpclib", "grpcio", "protobuf", "betterproto2", "h2", "uvloop"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    try:
        from google.protobuf.internal import api_implementation

        versions.append(f"protobuf backend {api_implementation.Type()}")
    except ImportError:
        pass
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} (server pinned to core 0, client to core 1)",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "packages": ", ".join(versions),
    }


def _stats(runs: list[float]) -> tuple[float, float]:
    med = statistics.median(runs)
    return med, ((max(runs) - min(runs)) / med * 100 if med else 0.0)


def _ratio(data: dict[str, Any], loop: str, cell: str, label: str, base: str) -> float | None:
    slot = data["results"].get(loop, {}).get(cell, {})
    if not slot.get(label) or not slot.get(base):
        return None
    return float(statistics.median(slot[label]) / statistics.median(slot[base]))


def _baseline(data: dict[str, Any], label: str) -> str:
    """What a pair's ratio is against: grpc.aio + grpc.aio with the same transport option."""
    option = data.get("options", {}).get(label)
    return BASELINE + security.OPTIONS[option].suffix if option else BASELINE


def _not_run(data: dict[str, Any], label: str, cell: str) -> bool:
    return cell not in data.get("option_cells", {}).get(label, [cell])


def table(data: dict[str, Any], loop: str) -> str:
    cells = data["cells"]
    lines = [
        "| server + client | " + " | ".join(cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for label in data["pairs"]:
        row = []
        for cell in cells:
            runs = data["results"].get(loop, {}).get(cell, {}).get(label)
            if not runs:
                row.append("—" if _not_run(data, label, cell) else "failed")
                continue
            med, spread = _stats(runs)
            ratio = _ratio(data, loop, cell, label, _baseline(data, label))
            r = f" ({ratio:.2f}x)" if ratio is not None else ""
            row.append(f"{med:,.0f}/s ±{spread:.0f}%{r}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


P99_TITLE = (
    "p99 latency, unary cells (ms; median of runs, ratio vs grpc.aio: below 1.00x is better)"
)


def p99_table(data: dict[str, Any], loop: str) -> str:
    """One row per pair, one column per unary cell: median p99 (ms) and ratio vs grpc.aio."""
    by_cell = data.get("p99_ms", {}).get(loop, {})
    cells = [cell for cell in data["cells"] if cell.startswith("unary ")]
    if not cells:
        return ""
    lines = [
        "| server + client | " + " | ".join(cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for label in data["pairs"]:
        row = []
        for cell in cells:
            runs = by_cell.get(cell, {}).get(label)
            if not runs:
                row.append("—" if _not_run(data, label, cell) else "failed")
                continue
            med = statistics.median(runs)
            base = by_cell.get(cell, {}).get(_baseline(data, label))
            base_med = statistics.median(base) if base else 0.0
            r = f" ({med / base_med:.2f}x)" if base_med else ""
            row.append(f"{med:.2f} ms{r}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join([P99_TITLE, "", *lines])


LAYER_ROWS = (
    ("rpcfw + rpcfw vs grpclib + grpclib", "rpcfw + rpcfw (protobuf)"),
    ("rpcfw server (grpclib client) vs grpclib server", "rpcfw server + grpclib client"),
    ("rpcfw client (grpclib server) vs grpclib client", "grpclib server + rpcfw client"),
)


def layers_table(data: dict[str, Any], loop: str) -> str:
    cells = data["cells"]
    lines = ["| rpcfw's layers, same protobuf messages | " + " | ".join(cells) + " |"]
    lines.append("|---" * (len(cells) + 1) + "|")
    for title, label in LAYER_ROWS:
        if label not in data["pairs"]:
            continue
        row = []
        for cell in cells:
            ratio = _ratio(data, loop, cell, label, "grpclib + grpclib")
            row.append("—" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_report(data: dict[str, Any], command: str, chart: str | None) -> str:
    out = [
        f"# rpcfw peer benchmark, {data['date']} ({data['mode']} mode)",
        "",
        f"Command: `{command}`. Wall time {data['elapsed_s']:.0f} s.",
        "",
        "Server and client in separate processes pinned to separate cores, one connection. "
        f"{data['repeats']} repeats of {data['duration_s']:g} s per measurement, pairs "
        "interleaved per cell; each entry is the median, ± the spread (max - min over median), "
        "and in brackets the ratio against grpc.aio server + grpc.aio client measured in the "
        "same run under the same loop. Unary cells are calls/s; stream cells are messages/s "
        f"(one stream at a time, {STREAM_BATCH} messages a call, 0 B payloads). Messages are "
        "protobuf (upb) for every pair except the betterproto2 row. This is a shared, noisy "
        "2-core machine: compare ratios, not absolutes, and mind the spread.",
        *(["", note] if (note := security.report_note(data)) else []),
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in data["machine"].items()),
        "",
    ]
    for loop in data["loops"]:
        out += [f"## {loop} loop", "", table(data, loop), ""]
        if latency := p99_table(data, loop):
            out += [latency, ""]
        out += [layers_table(data, loop), ""]
        if shares := security.share_table(data, loop):
            out += [shares, ""]
        for cell, by_pair in data["errors"].get(loop, {}).items():
            for label, msgs in by_pair.items():
                out.append(f"- {label}, {cell}: {len(msgs)} failed run(s): `{msgs[0]}`")
        out.append("")
    if chart:
        out += [f"![ratios against grpc.aio]({chart})", ""]
    out += [f"- {note}" for note in data["notes"]]
    return "\n".join(out).rstrip() + "\n"


def chart(data: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        data["notes"].append("matplotlib is not installed (`pip install matplotlib`): no chart")
        return None
    loops, cells, pairs = data["loops"], data["cells"], data["pairs"]
    fig, axes = plt.subplots(
        len(loops), 1, figsize=(max(8, 1.3 * len(cells) + 3), 4.2 * len(loops)), squeeze=False
    )
    width = 0.8 / len(pairs)
    for ax, loop in zip(axes[:, 0], loops, strict=True):
        for i, label in enumerate(pairs):
            heights, lows, highs = [], [], []
            for cell in cells:
                slot = data["results"].get(loop, {}).get(cell, {})
                base = slot.get(_baseline(data, label))
                runs = slot.get(label)
                if not runs or not base:
                    heights.append(0.0)
                    lows.append(0.0)
                    highs.append(0.0)
                    continue
                b = statistics.median(base)
                med = statistics.median(runs) / b
                heights.append(med)
                lows.append(med - min(runs) / b)
                highs.append(max(runs) / b - med)
            xs = [x + (i - (len(pairs) - 1) / 2) * width for x in range(len(cells))]
            ax.bar(xs, heights, width, yerr=[lows, highs], capsize=2, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels(cells, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("ratio vs grpc.aio + grpc.aio")
        ax.set_title(f"{loop} loop (median, whiskers: min..max of runs)")
    axes[0, 0].legend(fontsize=7, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


# ----------------------------------------------------------------------------------------
# profile


def _py_spy() -> str | None:
    import shutil

    return shutil.which("py-spy")


def profile(
    target: str,
    profiler: str,
    seconds: float,
    tmp: Path,
    top: int,
    client_stack: str,
    cell: Cell = PROFILE_CELL,
    option: str | None = None,
    side: str = "server",
) -> str:
    """Load an rpcfw server with one cell (unary 0 B at c=64 by default, optionally over TLS
    or gzip) from a client on the other core and show the server's (or, with py-spy, the
    client's) top functions by own time."""
    stack = {"rpcfw-server": "rpcfw-pb", "rpcfw-bp-server": "rpcfw-bp"}[target]
    if profiler == "auto":
        profiler = "py-spy" if _py_spy() else "cprofile"
    if side == "client" and profiler != "py-spy":
        raise SystemExit("--profile-side client needs py-spy (pip install py-spy)")
    prof_out = str(tmp / "server.prof")
    certs = security.make_certs(tmp / "certs") if option == "tls" else None
    server = _start_server(
        stack, "asyncio", tmp, prof_out if profiler == "cprofile" else None, option, certs
    )
    client = _start_client(client_stack, "asyncio", tmp)
    mode = Mode("profile", ("asyncio",), (cell,), seconds, 0.5, 1)
    spy = None
    raw = tmp / "py-spy.txt"
    watched = client if side == "client" else server
    try:
        if profiler == "py-spy":
            spy = subprocess.Popen(
                [
                    *(_py_spy() or "py-spy", "record", "--pid", str(watched.proc.pid)),
                    *("--rate", "200", "--duration", str(int(seconds)), "--format", "raw"),
                    *("--output", str(raw), "--nonblocking", "--idle"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )
        result = _run_job(client, server.port, cell, mode, option, certs)  # type: ignore[attr-defined]
        if spy is not None:
            _, err = spy.communicate(timeout=seconds + 30)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        client.stop()
        server.stop(30)
    profiled = f"{client_stack} client" if side == "client" else f"rpcfw server ({stack})"
    head = (
        f"{profiled} (asyncio loop) under {cell.name}"
        f"{f', {option}' if option else ''} "
        f"between a {stack} server and a {client_stack} client, {seconds:g} s, {profiler}: "
        f"{result.get('rate', 0):,.0f} calls/s "
        f"{'(profiler overhead included)' if profiler == 'cprofile' else ''}\n"
    )
    if profiler == "cprofile":
        return head + _cprofile_top(prof_out, top)
    return head + _pyspy_top(raw, top)


def _package(filename: str) -> str:
    parts = Path(filename).parts
    for marker in ("site-packages", "lib"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            if marker == "lib" and rest and rest[0].startswith("python"):
                rest = rest[1:]
                if rest and rest[0] == "site-packages":
                    rest = rest[1:]
                elif rest:
                    return "stdlib:" + rest[0].removesuffix(".py")
            if rest:
                return rest[0].removesuffix(".py")
    if "rpcfw" in parts:
        return "rpcfw"
    if filename.startswith("<") or filename == "~":
        return "builtins"
    if len(parts) > 1 and not Path(filename).is_absolute():  # py-spy: "h2/connection.py"
        return parts[0]
    return Path(filename).stem


def _group_lines(groups: dict[str, float], total: float) -> list[str]:
    lines = ["", "Own time by package:"]
    for name, value in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"  {value / total * 100:5.1f}%  {name}")
    return lines


def _cprofile_top(path: str, top: int) -> str:
    import pstats

    stats = pstats.Stats(path)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    lines = [f"Top {top} functions by own time (cProfile tottime, % of profiled time):"]
    for (filename, lineno, func), (_, ncalls, tottime, _cum, _) in rows:
        where = f"{_package(filename)}:{Path(filename).name}:{lineno}" if lineno else "builtin"
        lines.append(
            f"  {tottime / total * 100:5.1f}%  {tottime:7.3f}s  {ncalls:>8}  {func}  ({where})"
        )
    groups: dict[str, float] = {}
    for (filename, _, _), v in entries.items():
        key = _package(filename)
        groups[key] = groups.get(key, 0.0) + v[2]
    return "\n".join(lines + _group_lines(groups, total)) + "\n"


def _pyspy_top(path: Path, top: int) -> str:
    own: dict[str, int] = {}
    groups: dict[str, float] = {}
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        if "(threading.py" in stack:  # the stdin watcher thread (or grpc's): not the loop
            continue
        if "(selectors.py" in leaf:  # the event loop waiting in epoll
            idle += int(count)
            continue
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
        filename = leaf.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
        key = _package(filename)
        groups[key] = groups.get(key, 0.0) + int(count)
    busy = total / (total + idle) * 100 if total + idle else 0.0
    total = total or 1
    lines = [
        f"Server busy {busy:.0f}% of samples (the rest waiting in the loop's poll).",
        f"Top {top} functions by own time (py-spy samples, % of {total} busy samples):",
    ]
    for leaf, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {count / total * 100:5.1f}%  {leaf}")
    return "\n".join(lines + _group_lines(groups, total)) + "\n"


# ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--quick", action="store_true", help="few cells, short runs (default)")
    what.add_argument("--full", action="store_true", help="every cell, both loops")
    what.add_argument("--profile", choices=("rpcfw-server", "rpcfw-bp-server"))
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile"), default="auto")
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--profile-client", choices=STACKS, default="grpc.aio")
    parser.add_argument("--profile-payload", type=int, default=PROFILE_CELL.payload, help="bytes")
    parser.add_argument("--profile-concurrency", type=int, default=PROFILE_CELL.concurrency)
    parser.add_argument("--profile-option", choices=tuple(security.OPTIONS))
    parser.add_argument("--profile-side", choices=("server", "client"), default="server")
    parser.add_argument("--repeats", type=int, help="override the mode's repeat count (>= 3)")
    parser.add_argument("--duration", type=float, help="override seconds per measurement")
    parser.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--name", help="results file name without suffix (default DATE-MODE)")
    # child roles
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--cprofile-out", help=argparse.SUPPRESS)
    parser.add_argument("--option", choices=tuple(security.OPTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        _run(args.loop, lambda: _serve(args.serve, args.cprofile_out, args.option, args.certs))
        return
    if args.client:
        _run(args.loop, lambda: _client_main(args.client))
        return

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    date = dt.datetime.now().strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="rpcfw-bench-") as tmpdir:
            tmp = Path(tmpdir)
            _generate(tmp)
            if args.profile:
                text = profile(
                    args.profile,
                    args.profiler,
                    args.profile_seconds,
                    tmp,
                    args.top,
                    args.profile_client,
                    Cell("unary", args.profile_payload, args.profile_concurrency),
                    args.profile_option,
                    args.profile_side,
                )
                suffix = f"-{args.profile_option}" if args.profile_option else ""
                suffix += "-client" if args.profile_side == "client" else ""
                path = args.out / f"{date}-profile-{args.profile}{suffix}.txt"
                path.write_text(text)
                print(text)
                print(f"wrote {path}")
                return
            mode = FULL if args.full else QUICK
            if args.repeats or args.duration or args.loops:
                mode = Mode(
                    mode.name,
                    tuple(args.loops or mode.loops),
                    mode.cells,
                    args.duration or mode.duration,
                    mode.warmup,
                    max(3, args.repeats or mode.repeats),
                )
            machine = machine_info()
            data = run_matrix(mode, PAIRS, tmp)
    finally:
        Child.kill_all()
    data["date"], data["machine"] = date, machine
    data["machine"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stem = args.name or f"{date}-{mode.name}"
    png = chart(data, args.out / f"{stem}.png")
    command = "python benchmarks/suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render_report(data, command.strip(), png)
    (args.out / f"{stem}.md").write_text(report)
    (args.out / f"{stem}.json").write_text(json.dumps(data, indent=1))
    print(report)
    print(f"wrote {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()
