"""Abuse benchmark: attacks an rpcfw server and a grpc.aio (grpcio) server side by side.

    python benchmarks/abuse.py                      # default mode, 2-3 minutes
    python benchmarks/abuse.py --full               # bigger storm and soak, ~10 minutes
    python benchmarks/abuse.py --scale 0.05         # everything 20x smaller (a quick check)
    python benchmarks/abuse.py --only rapid-reset   # one scenario (repeat --only for more)

Scenarios (each against a fresh server process of each kind, rpcfw first):

1. rapid-reset: 25,000 HEADERS + RST_STREAM(CANCEL) pairs as fast as possible, one connection.
2. steady-reset: 6,000 resets/s for 5 s (a connection the server ends is replaced) while a
   normal client makes calls.
3. settings-flood: 50,000 empty SETTINGS frames on one connection (its ACKs are read).
4. ping-flood: up to 50,000 PINGs from a peer that never reads (tiny receive buffer).
5. big-metadata: one request with 100 KB and one with 1 MiB of metadata, each followed by a
   normal request on the same connection (did it survive?).
6. cancel-storm: 4 client processes x 5,000 calls (--full: x 20,000) to a handler that sleeps
   50 ms, each call cancelled after a random 0-5 ms; then 1,000 normal calls with a 10 s deadline.
7. soak: 200,000 unary calls (--full: 1,000,000) over one connection; server RSS every 10%.

Servers run in their own processes pinned to core 0; the attacker, the storm and soak clients
and this process (which makes the normal calls and reads /proc/<pid>/stat and status of the
server) run on core 1. Attacks 1-5 use raw frames (hyperframe + hpack, built before the attack
starts, written in 256 KiB chunks); normal calls, the storm and the soak use a real client:
rpcfw's Channel for both servers by default (``--client``), so both servers see the same bytes.
Only 127.0.0.1 is used. Every loop is bounded by a count and by a time limit. The report is
written to ``benchmarks/results/<date>-abuse.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import suite
from abuse_lib import raw
from abuse_lib.procfs import Monitor, cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = ("rpcfw", "grpc.aio")
SCENARIOS = (
    "rapid-reset",
    "steady-reset",
    "settings-flood",
    "ping-flood",
    "big-metadata",
    "cancel-storm",
    "soak",
)
TITLES = {
    "rapid-reset": "1. Rapid Reset",
    "steady-reset": "2. Steady reset rate",
    "settings-flood": "3. SETTINGS flood",
    "ping-flood": "4. PING flood, peer never reads",
    "big-metadata": "5. Oversized metadata",
    "cancel-storm": "6. Cancellation storm",
    "soak": "7. Soak",
}
# --client: the client stack (as benchmarks/suite.py names them) used against each server
CLIENTS = {
    "rpcfw": {"rpcfw": "rpcfw-pb", "grpc.aio": "rpcfw-pb"},
    "native": {"rpcfw": "rpcfw-pb", "grpc.aio": "grpc.aio"},
    "grpc.aio": {"rpcfw": "grpc.aio", "grpc.aio": "grpc.aio"},
}
CALL_TIMEOUT = 10.0  # deadline of every normal call
NEW_CONNECTION_TIMEOUT = 30.0


@dataclasses.dataclass
class Plan:
    """Counts and limits of one run (after --full, --scale and the overrides)."""

    rapid_pairs: int = 25_000
    steady_rate: float = 6000.0
    steady_seconds: float = 5.0
    settings_frames: int = 50_000
    pings: int = 50_000
    metadata_sizes: tuple[int, ...] = (100_000, 1 << 20)
    storm_workers: int = 4
    storm_calls: int = 5_000  # per worker
    # calls in flight per worker: with more, most calls are cancelled before they reach the
    # server (4 client processes share one core), and the storm no longer hits handlers
    storm_concurrency: int = 4
    storm_delay_ms: int = 50
    storm_cancel_ms: float = 5.0
    storm_limit: float = 120.0  # seconds, per server
    after_calls: int = 1_000
    after_concurrency: int = 50
    soak_calls: int = 200_000
    soak_concurrency: int = 32
    soak_limit: float = 240.0  # seconds, per server
    probe_calls: int = 20

    def scaled(self, scale: float) -> Plan:
        if scale == 1.0:
            return self

        def n(x: int) -> int:
            return max(1, round(x * scale))

        return dataclasses.replace(
            self,
            rapid_pairs=n(self.rapid_pairs),
            steady_seconds=max(0.5, self.steady_seconds * scale),
            settings_frames=n(self.settings_frames),
            pings=n(self.pings),
            storm_calls=n(self.storm_calls),
            after_calls=n(self.after_calls),
            soak_calls=max(100, n(self.soak_calls)),
        )


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


_T0 = time.monotonic()


def _error_name(exc: BaseException) -> str:
    """A failed call's status name, whichever client raised it."""
    status = getattr(exc, "status", None)  # rpcfw.RpcError
    if status is not None and hasattr(status, "name"):
        return str(status.name)
    code = getattr(exc, "code", None)  # grpc.aio.AioRpcError
    if callable(code):
        with contextlib.suppress(Exception):
            return str(code().name)
    if isinstance(exc, TimeoutError):
        return "no answer (local timeout)"
    return type(exc).__name__


# ----------------------------------------------------------------------------------------
# child side: servers and workers


async def _serve(kind: str) -> None:
    """A server on 127.0.0.1 serving echo.v1.Echo/Unary (``message`` "abort:<code>:<text>"
    aborts, ``delay_ms`` sleeps first); prints {"port", "pid"}; answers "stats" on stdin."""
    from bench_pb.echo.v1 import echo_rpcfw as mod  # type: ignore[import-not-found]

    state: dict[str, Any] = {"calls": 0, "running": 0, "cancelled": 0, "peers": set()}

    def begin(peer: str) -> None:
        state["calls"] += 1
        state["running"] += 1
        state["peers"].add(peer)

    extra: Callable[[], dict[str, Any]]
    if kind == "rpcfw":
        import rpcfw
        from tests.echo_service import make_echo_service

        class _Count:  # the test service keeps a list of cancelled calls: count them instead
            def append(self, item: object) -> None:
                pass

        class Echo(type(make_echo_service(mod, "rpcfw"))):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.cancelled = _Count()

            async def unary(self, request: Any, context: Any) -> Any:
                begin(context.peer)
                try:
                    return await super().unary(request, context)
                except asyncio.CancelledError:
                    state["cancelled"] += 1
                    raise
                finally:
                    state["running"] -= 1

        server = rpcfw.Server([Echo()])
        await server.start("127.0.0.1", 0)
        port = server.port

        def rpcfw_stats() -> dict[str, Any]:
            return {
                **dataclasses.asdict(server.transport_stats()),
                "open_connections": server.open_connections,
                "running_calls": server.running_calls,
            }

        extra = rpcfw_stats

    else:
        import grpc

        codes = {c.value[0]: c for c in grpc.StatusCode}

        async def unary(request: Any, context: Any) -> Any:
            begin(context.peer())
            try:
                if request.message.startswith("abort:"):
                    _, code, text = request.message.split(":", 2)
                    await context.abort(codes[int(code)], text)
                if request.delay_ms:
                    await asyncio.sleep(request.delay_ms / 1000)
                return mod.EchoResponse(
                    message=request.message, payload=request.payload, server_id="grpc.aio"
                )
            except asyncio.CancelledError:
                state["cancelled"] += 1
                raise
            finally:
                state["running"] -= 1

        handler = grpc.method_handlers_generic_handler(
            "echo.v1.Echo",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(
                    unary, mod.EchoRequest.FromString, mod.EchoResponse.SerializeToString
                )
            },
        )
        extra = dict
        aserver = grpc.aio.server()
        aserver.add_generic_rpc_handlers((handler,))
        port = aserver.add_insecure_port("127.0.0.1:0")
        await aserver.start()
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if json.loads(line).get("cmd") == "stats":
            out = {k: v for k, v in state.items() if k != "peers"}
            out["connections_seen_by_handlers"] = len(state["peers"])
            out.update(extra())
            print(json.dumps(out), flush=True)
    os._exit(0)  # stdin closed: the parent is done with us


def _emit(**obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _ready() -> None:
    """Tell the parent we are set, and wait for its "go"."""
    _emit(event="ready")
    if not sys.stdin.readline():
        os._exit(0)


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.close()


async def _storm(job: dict[str, Any]) -> dict[str, Any]:
    """``calls`` calls, ``concurrency`` at a time, each to a handler that sleeps ``delay_ms``
    and each cancelled (the call's task is cancelled: the client resets the stream) after a
    random 0..``cancel_ms`` ms."""
    client = suite._Client(job["stack"], job["port"])
    rng = random.Random(job["seed"])
    req = client.Req(message="storm", delay_ms=job["delay_ms"])
    outcomes: Counter[str] = Counter()
    late_ms = 0.0  # the longest call that completed although its cancellation was due earlier
    try:
        async with asyncio.timeout(CALL_TIMEOUT + 5):
            await client.unary(client.Req(message="warm-up"), timeout=CALL_TIMEOUT)
        await asyncio.to_thread(_ready)
        left = job["calls"]
        start = time.monotonic()
        stop_at = start + job["limit"]

        async def worker() -> None:
            nonlocal left, late_ms
            while left > 0 and time.monotonic() < stop_at:
                left -= 1
                cancel_after = rng.uniform(0, job["cancel_ms"] / 1000)
                began = time.monotonic()
                try:
                    async with asyncio.timeout(cancel_after):
                        await client.unary(req, timeout=CALL_TIMEOUT)
                    took = time.monotonic() - began
                    if took > cancel_after + 0.002:  # the cancellation was swallowed
                        outcomes["completed although cancelled"] += 1
                        late_ms = max(late_ms, took * 1000)
                    else:
                        outcomes["completed"] += 1
                except TimeoutError:
                    outcomes["cancelled"] += 1
                except Exception as exc:
                    outcomes[_error_name(exc)] += 1

        await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
        elapsed = time.monotonic() - start
    finally:
        await _close(client)
    made = sum(outcomes.values())
    return {
        "calls": made,
        "seconds": round(elapsed, 2),
        "outcomes": dict(outcomes),
        "late_ms": round(late_ms, 1),
    }


async def _soak(job: dict[str, Any]) -> dict[str, Any]:
    """``calls`` unary calls over one connection, ``concurrency`` at a time, in ten slices;
    after each slice a progress line lets the parent sample the server's RSS."""
    client = suite._Client(job["stack"], job["port"])
    req = client.Req(message="soak")
    failures: Counter[str] = Counter()
    try:
        warm = min(2000, max(10, job["calls"] // 20))
        async with asyncio.timeout(CALL_TIMEOUT + 30):
            for _ in range(warm):
                await client.unary(req, timeout=CALL_TIMEOUT)
        await asyncio.to_thread(_ready)
        start = time.monotonic()
        stop_at = start + job["limit"]
        done = 0
        _emit(event="progress", done=0)
        for step in range(1, 11):
            left = job["calls"] * step // 10 - done

            async def worker() -> None:
                nonlocal left, done
                while left > 0 and time.monotonic() < stop_at:
                    left -= 1
                    try:
                        await client.unary(req, timeout=CALL_TIMEOUT)
                    except Exception as exc:
                        failures[_error_name(exc)] += 1
                    done += 1

            await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
            _emit(event="progress", done=done)
            if time.monotonic() >= stop_at:
                break
        elapsed = time.monotonic() - start
    finally:
        await _close(client)
    return {
        "calls": done,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(done / elapsed) if elapsed else None,
        "failures": dict(failures),
        "truncated_by_time_limit": done < job["calls"],
    }


def _worker_main() -> None:
    """Run jobs read from stdin, one JSON object a line: ready -> (go) -> done."""
    while line := sys.stdin.readline():
        job = json.loads(line)
        kind = job["kind"]
        try:
            if kind == "rapid-reset":
                result = raw.rapid_reset(job["port"], job["pairs"], _ready)
            elif kind == "steady-reset":
                result = raw.steady_reset(job["port"], job["rate"], job["seconds"], _ready)
            elif kind == "settings-flood":
                result = raw.settings_flood(job["port"], job["frames"], _ready)
            elif kind == "ping-flood":
                result = raw.ping_flood(job["port"], job["pings"], _ready)
            elif kind == "big-metadata":
                result = raw.big_metadata(job["port"], job["sizes"], _ready)
            elif kind == "cancel-storm":
                result = asyncio.run(_storm(job))
            elif kind == "soak":
                result = asyncio.run(_soak(job))
            else:
                raise ValueError(f"unknown job {kind!r}")
        except Exception as exc:
            traceback.print_exc()
            _emit(event="done", error=f"{type(exc).__name__}: {exc}"[:400])
        else:
            _emit(event="done", result=result)


# ----------------------------------------------------------------------------------------
# parent side: processes


class Proc(suite.Child):
    """``suite.Child`` running this file in a role, with an asyncio-friendly ``event()``."""

    def __init__(self, argv: list[str], core: int, gen_root: str, log_path: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([gen_root, str(ROOT)]))
        self.log = log_path
        with log_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*suite._pinned(core), sys.executable, str(Path(__file__).resolve()), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                preexec_fn=suite._die_with_parent,
            )
        self._buf = b""
        suite.Child.live.append(self)

    async def event(self, within: float) -> dict[str, Any]:
        """The next JSON line the child prints (TimeoutError after ``within`` seconds)."""
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        fd = self.proc.stdout.fileno()
        async with asyncio.timeout(within):
            while b"\n" not in self._buf:
                readable = loop.create_future()
                loop.add_reader(fd, lambda f=readable: f.done() or f.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"child exited ({self.proc.poll()}); {self.tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result


class ServerProc:
    count = 0

    def __init__(self, kind: str, tmp: Path) -> None:
        ServerProc.count += 1
        self.kind = kind
        self.child = Proc(
            ["--role", "serve", "--kind", kind],
            0,
            str(tmp),
            tmp / f"server-{ServerProc.count}-{kind}.log",
        )

    async def start(self) -> None:
        hello = await self.child.event(60)
        self.port: int = hello["port"]
        self.pid: int = hello["pid"]

    async def stats(self) -> dict[str, Any]:
        self.child.send({"cmd": "stats"})
        return await self.child.event(15)

    def exit_code(self) -> int | None:
        return self.child.proc.poll()

    def stop(self) -> None:
        self.child.stop(5)


def _stop_all(procs: Sequence[Proc], wait: float) -> None:
    """Close every stdin at once (their cue to exit), then wait ``wait`` seconds in all
    before killing those still running."""
    for proc in procs:
        with contextlib.suppress(Exception):
            assert proc.proc.stdin is not None
            proc.proc.stdin.close()
    deadline = time.monotonic() + wait
    for proc in procs:
        proc.stop(max(0.05, deadline - time.monotonic()))


@dataclasses.dataclass
class Ctx:
    plan: Plan
    tmp: Path
    client: str
    _worker: Proc | None = None
    _workers_made: int = 0

    def stack(self, server: str) -> str:
        return CLIENTS[self.client][server]

    def new_worker(self, name: str) -> Proc:
        self._workers_made += 1
        return Proc(
            ["--role", "worker"],
            1,
            str(self.tmp),
            self.tmp / f"worker-{self._workers_made}-{name}.log",
        )

    def worker(self) -> Proc:
        if self._worker is None or self._worker.proc.poll() is not None:
            self._worker = self.new_worker("attacker")
        return self._worker

    def reset_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop(1)
            self._worker = None


# ----------------------------------------------------------------------------------------
# parent side: normal calls


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def _call(client: Any, deadline_s: float = CALL_TIMEOUT, message: str = "probe") -> float:
    """One unary call with a ``deadline_s`` deadline; returns its latency in seconds."""
    start = time.perf_counter()
    async with asyncio.timeout(deadline_s + 5):
        await client.unary(client.Req(message=message), timeout=deadline_s)
    return time.perf_counter() - start


async def new_connection_call(stack: str, port: int) -> dict[str, Any]:
    """One unary call on a new channel (so a new connection: its setup is in the latency)."""
    client = suite._Client(stack, port)
    try:
        return {"ms": _ms(await _call(client, NEW_CONNECTION_TIMEOUT)), "error": None}
    except Exception as exc:
        return {"ms": None, "error": _error_name(exc)}
    finally:
        await _close(client)


def _latencies(lat: list[float], errors: Counter[str], made: int) -> dict[str, Any]:
    return {
        "n": made,
        "ok": len(lat),
        "p50_ms": _ms(statistics.median(lat)) if lat else None,
        "max_ms": _ms(max(lat)) if lat else None,
        "failed": made - len(lat),
        "errors": dict(errors),
    }


async def probe_during(
    client: Any, attack: asyncio.Future[Any], gap: float, max_calls: int
) -> dict[str, Any]:
    """Sequential calls on an established connection while ``attack`` runs (at least one),
    ``gap`` seconds apart, at most ``max_calls``."""
    lat: list[float] = []
    errors: Counter[str] = Counter()
    made = 0
    while made < max_calls and (made == 0 or not attack.done()):
        made += 1
        try:
            lat.append(await _call(client))
        except Exception as exc:
            errors[_error_name(exc)] += 1
        if gap and not attack.done():
            await asyncio.wait([attack], timeout=gap)
    return _latencies(lat, errors, made)


async def calls_after(stack: str, port: int, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` calls with a 10 s deadline on one new connection, ``concurrency`` at a time."""
    client = suite._Client(stack, port)
    lat: list[float] = []
    errors: Counter[str] = Counter()
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            try:
                lat.append(await _call(client))
            except Exception as exc:
                errors[_error_name(exc)] += 1

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await _close(client)
    out = _latencies(lat, errors, n)
    out["deadline_exceeded"] = errors.get("DEADLINE_EXCEEDED", 0) + errors.get(
        "no answer (local timeout)", 0
    )
    return out


async def settle(mon: Monitor, limit: float = 20.0, window: float = 0.5) -> float:
    """Wait until the server used at most one clock tick of CPU in ``window`` seconds (it has
    worked off what the attack left behind), at most ``limit`` seconds."""
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    history: list[tuple[float, float]] = []
    while time.monotonic() - start < limit:
        try:
            history.append((time.monotonic(), cpu_seconds(mon.pid)))
        except OSError:
            break
        old = [c for t, c in history if history[-1][0] - t >= window]
        if old and history[-1][1] - old[-1] <= tick + 1e-9:
            break
        await asyncio.sleep(0.1)
    return round(time.monotonic() - start, 2)


# ----------------------------------------------------------------------------------------
# parent side: scenarios


def _row(
    usage: dict[str, Any],
    new_conn: dict[str, Any] | None,
    during: dict[str, Any] | None,
    goaway: str,
    details: list[str],
    attack: Any,
    stats: dict[str, Any] | None,
    other_calls: tuple[int, int, dict[str, int]] = (0, 0, {}),
    *,
    key: str = "",
) -> dict[str, Any]:
    """One scenario's result for one server; ``key`` is its scenario-specific figure."""
    made, failed, kinds = other_calls
    errors: Counter[str] = Counter(kinds)
    if new_conn is not None:
        made += 1
        if new_conn["error"]:
            failed += 1
            errors[new_conn["error"]] += 1
    if during is not None:
        made += during["n"]
        failed += during["failed"]
        errors.update(during["errors"])
    return {
        "usage": usage,
        "new_connection_call": new_conn,
        "during": during,
        "goaway": goaway,
        "normal_calls": {"made": made, "failed": failed, "errors": dict(errors)},
        "details": details,
        "key": key,
        "attack": attack,
        "server_stats": stats,
    }


def _server_facts(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    keys = (
        "connections_accepted",
        "resets_received",
        "streams_refused",
        "connections_ended_for_abuse",
        "calls",
        "cancelled",
        "running",
    )
    return ", ".join(f"{k} {stats[k]:,}" for k in keys if k in stats)


async def raw_attack(
    ctx: Ctx,
    server: ServerProc,
    job: dict[str, Any],
    *,
    gap: float,
    max_calls: int,
    limit: float,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run one raw attack from the worker while a prober makes normal calls on its own
    connection; then a call on a new connection; then wait for the server to go quiet.
    Returns (attack result, usage, during, new_conn, server stats)."""
    stack = ctx.stack(server.kind)
    mon = Monitor(server.pid)
    try:
        return await _raw_attack(ctx, server, job, mon, stack, gap, max_calls, limit)
    finally:
        mon.end()  # stops the sampler however the attack ended (a second end() is harmless)


async def _raw_attack(
    ctx: Ctx,
    server: ServerProc,
    job: dict[str, Any],
    mon: Monitor,
    stack: str,
    gap: float,
    max_calls: int,
    limit: float,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    prober = suite._Client(stack, server.port)
    try:
        await _call(prober, message="warm-up")
        worker = ctx.worker()
        worker.send({**job, "port": server.port})
        event = await worker.event(120)
        if event["event"] != "ready":
            raise RuntimeError(f"attacker failed: {event.get('error', event)}")
        mon.begin()
        worker.send({"go": True})
        attack = asyncio.ensure_future(worker.event(limit))
        try:
            during = await probe_during(prober, attack, gap, max_calls)
            event = await attack
        finally:
            attack.cancel()
    finally:
        await _close(prober)
    try:
        if "error" in event:
            raise RuntimeError(f"attacker failed: {event['error']}")
        new_conn = await new_connection_call(stack, server.port)
        settle_s = await settle(mon)
    finally:
        usage = mon.end()
    usage["settle_s"] = settle_s
    stats = await server.stats()
    return event["result"], usage, during, new_conn, stats


async def sc_rapid_reset(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    job = {"kind": "rapid-reset", "pairs": ctx.plan.rapid_pairs}
    res, usage, during, new_conn, stats = await raw_attack(
        ctx, server, job, gap=0.0, max_calls=ctx.plan.probe_calls, limit=120
    )
    details = [
        f"{res['pairs_written']:,} of {res['pairs_planned']:,} pairs handed to the kernel in "
        f"{res['write_s']:.3f} s; the connection: {res['closed']}; RST_STREAM from the "
        f"server: {res['rst_stream_received'] or 'none'}",
        f"server: {_server_facts(stats)}",
    ]
    rst = ", ".join(f"{v:,} {k}" for k, v in res["rst_stream_received"].items()) or "none"
    key = f"RST_STREAM answers: {rst}"
    return _row(usage, new_conn, during, res["goaway_text"], details, res, stats, key=key)


async def sc_steady_reset(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    plan = ctx.plan
    job = {"kind": "steady-reset", "rate": plan.steady_rate, "seconds": plan.steady_seconds}
    res, usage, during, new_conn, stats = await raw_attack(
        ctx, server, job, gap=0.02, max_calls=5000, limit=plan.steady_seconds + 60
    )
    goaway = res["goaway_text"]
    if res["goaways"]:
        goaway += f"; {sum(res['goaways'].values())} GOAWAY(s) in all"
    details = [
        f"{res['resets_written']:,} resets in {res['duration_s']} s "
        f"({res['resets_per_s'] or 0:,}/s, target {plan.steady_rate:,.0f}/s) over "
        f"{res['connections']} connection(s), {res['connections_closed_by_server']} ended by "
        f"the server; GOAWAYs: {res['goaways'] or 'none'}",
        f"server: {_server_facts(stats)}",
    ]
    key = (
        f"{res['resets_written']:,} resets over {res['connections']} connection(s), "
        f"{sum(res['goaways'].values())} GOAWAY(s)"
    )
    return _row(usage, new_conn, during, goaway, details, res, stats, key=key)


async def sc_settings_flood(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    job = {"kind": "settings-flood", "frames": ctx.plan.settings_frames}
    res, usage, during, new_conn, stats = await raw_attack(
        ctx, server, job, gap=0.0, max_calls=ctx.plan.probe_calls, limit=150
    )
    details = [
        f"{res['frames_written']:,} of {res['frames_planned']:,} SETTINGS handed to the kernel "
        f"in {res['write_s']:.3f} s; {res['acks_received']:,} ACKs received; the connection: "
        f"{res['closed']}",
        f"server: {_server_facts(stats)}",
    ]
    key = f"{res['acks_received']:,} SETTINGS ACKs for {res['frames_written']:,} frames"
    return _row(usage, new_conn, during, res["goaway_text"], details, res, stats, key=key)


async def sc_ping_flood(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    job = {"kind": "ping-flood", "pings": ctx.plan.pings}
    res, usage, during, new_conn, stats = await raw_attack(
        ctx, server, job, gap=0.05, max_calls=ctx.plan.probe_calls, limit=120
    )
    how = "writes stalled (server stopped reading)" if res["writes_stalled"] else ""
    if res["closed_while_writing"] != "no":
        how = f"connection {res['closed_while_writing']} while writing"
    details = [
        f"{res['pings_written']:,} of {res['pings_planned']:,} PINGs handed to the kernel in "
        f"{res['write_s']:.3f} s{'; ' + how if how else ''}; PING ACKs the server had queued "
        f"(read afterwards): {res['acks_read_afterwards']:,}; the connection: {res['closed']}",
        f"server: {_server_facts(stats)}",
    ]
    key = f"{res['acks_read_afterwards']:,} PING ACKs queued for {res['pings_written']:,} PINGs"
    return _row(usage, new_conn, during, res["goaway_text"], details, res, stats, key=key)


def _size_label(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    return f"{size / 1000:g} KB"


async def sc_big_metadata(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    job = {"kind": "big-metadata", "sizes": list(ctx.plan.metadata_sizes)}
    res, usage, during, new_conn, stats = await raw_attack(
        ctx, server, job, gap=0.05, max_calls=ctx.plan.probe_calls, limit=120
    )
    details = []
    goaways = []
    keys = []
    for size, entry in res.items():
        label = _size_label(int(size))
        goaways.append(f"{label}: {entry['goaway_text']}")
        status = entry["first_call"].split(' "')[0]
        keys.append(
            f"{label}: {status}, connection {'survived' if entry['survived'] else 'closed'}"
        )
        details.append(
            f"{label} ({entry['header_block_bytes']:,} B header block): the stream got "
            f"{entry['first_call']} in {entry['first_call_ms']:.0f} ms; connection "
            f"{'survived' if entry['survived'] else 'did not survive'} (second call: "
            f"{entry['second_call']}; {entry['closed']})"
        )
    details.append(f"server: {_server_facts(stats)}")
    key = "; ".join(keys)
    return _row(usage, new_conn, during, "; ".join(goaways), details, res, stats, key=key)


async def sc_cancel_storm(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    plan = ctx.plan
    stack = ctx.stack(server.kind)
    mon = Monitor(server.pid)
    workers = [ctx.new_worker(f"storm{i}") for i in range(plan.storm_workers)]
    prober = suite._Client(stack, server.port)
    try:
        await _call(prober, message="warm-up")
        for i, worker in enumerate(workers):
            worker.send(
                {
                    "kind": "cancel-storm",
                    "port": server.port,
                    "stack": stack,
                    "calls": plan.storm_calls,
                    "concurrency": plan.storm_concurrency,
                    "delay_ms": plan.storm_delay_ms,
                    "cancel_ms": plan.storm_cancel_ms,
                    "limit": plan.storm_limit,
                    "seed": i,
                }
            )
        for worker in workers:
            event = await worker.event(120)
            if event["event"] != "ready":
                raise RuntimeError(f"storm client failed: {event.get('error', event)}")
        before = await server.stats()
        mon.begin()
        storm_start = time.monotonic()
        for worker in workers:
            worker.send({"go": True})
        storm = asyncio.ensure_future(
            asyncio.gather(*(w.event(plan.storm_limit + 60) for w in workers))
        )
        try:
            during = await probe_during(prober, storm, 0.05, plan.probe_calls)
            events = await storm
        finally:
            storm.cancel()
        storm_s = round(time.monotonic() - storm_start, 2)
        errors = [e["error"] for e in events if "error" in e]
        if errors:
            raise RuntimeError(f"storm client failed: {errors[0]}")
        at_end = await server.stats()
        new_conn = await new_connection_call(stack, server.port)
        after = await calls_after(stack, server.port, plan.after_calls, plan.after_concurrency)
        drain_start = time.monotonic()
        for _ in range(300):  # handlers still sleeping: at most 30 s
            stats = await server.stats()
            if not stats["running"]:
                break
            await asyncio.sleep(0.1)
        settle_s = await settle(mon)
        drain_s = round(time.monotonic() - drain_start, 2)
    finally:
        await _close(prober)
        _stop_all(workers, 2.0)
    usage = mon.end()
    usage["settle_s"] = settle_s
    outcomes: Counter[str] = Counter()
    calls = 0
    for event in events:
        outcomes.update(event["result"]["outcomes"])
        calls += event["result"]["calls"]
    seconds = max(e["result"]["seconds"] for e in events)
    reconnects = at_end["connections_seen_by_handlers"] - before["connections_seen_by_handlers"]
    if "connections_ended_for_abuse" in at_end:
        ended = at_end["connections_ended_for_abuse"] - before["connections_ended_for_abuse"]
        goaway = (
            f"yes: {ended} client connection(s) ended for abuse (server counter)"
            if ended
            else "none (server counter)"
        )
    else:
        goaway = "not observable (no server counter)"
    ok = ("cancelled", "completed", "completed although cancelled")
    bad = {k: v for k, v in outcomes.items() if k not in ok}
    late = outcomes.get("completed although cancelled", 0)
    late_ms = max(e["result"]["late_ms"] for e in events)
    handled = at_end["calls"] - before["calls"]
    killed = at_end["cancelled"] - before["cancelled"]
    details = [
        f"{calls:,} calls by {plan.storm_workers} clients x {plan.storm_concurrency} in flight "
        f"in {seconds} s ({calls / seconds if seconds else 0:,.0f}/s; storm phase {storm_s} s): "
        f"{outcomes.get('cancelled', 0):,} cancelled by us, {outcomes.get('completed', 0):,} "
        f"completed before their cancel, other outcomes: {bad or 'none'}; "
        f"{handled:,} reached a handler, {killed:,} handlers were cancelled; new connections "
        f"opened by the clients during the storm: {reconnects}",
        f"right after: {after['n']:,} calls (10 s deadline, {plan.after_concurrency} in flight, "
        f"new connection): {after['deadline_exceeded']} hit the deadline, {after['failed']} "
        f"failed in all{' ' + str(after['errors']) if after['errors'] else ''}, p50 "
        f"{after['p50_ms']} ms, max {after['max_ms']} ms; handlers drained and CPU quiet "
        f"{drain_s} s after the storm",
        f"server at the storm's end: {_server_facts(at_end)}",
    ]
    if late:
        details.insert(
            1,
            f"{late} call(s) completed although their cancellation was due after at most "
            f"{plan.storm_cancel_ms:g} ms (the client let the call go on; the longest took "
            f"{late_ms:.0f} ms)",
        )
    storm_failed = sum(bad.values())
    row = _row(
        usage,
        new_conn,
        during,
        goaway,
        details,
        {"storm": [e["result"] for e in events], "after_calls": after},
        stats,
        (after["n"], after["failed"], after["errors"]),
        key=(
            f"{handled:,} handlers reached, {killed:,} cancelled; storm calls failed: "
            f"{sum(bad.values())}"
            + (f", {late} ran on after their cancel" if late else "")
            + f"; {after['deadline_exceeded']} of {after['n']:,} calls after hit the 10 s "
            f"deadline (p50 {after['p50_ms']} / max {after['max_ms']} ms)"
        ),
    )
    row["storm_failures"] = {"failed": storm_failed, "of": calls, "kinds": bad}
    row["after_calls"] = after
    return row


def _slope_per_100k(points: list[tuple[int, float]]) -> float | None:
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 100_000


async def sc_soak(ctx: Ctx, server: ServerProc) -> dict[str, Any]:
    plan = ctx.plan
    stack = ctx.stack(server.kind)
    mon = Monitor(server.pid)
    worker = ctx.worker()
    worker.send(
        {
            "kind": "soak",
            "port": server.port,
            "stack": stack,
            "calls": plan.soak_calls,
            "concurrency": plan.soak_concurrency,
            "limit": plan.soak_limit,
        }
    )
    event = await worker.event(180)
    if event["event"] != "ready":
        raise RuntimeError(f"soak client failed: {event.get('error', event)}")
    mon.begin()
    worker.send({"go": True})
    samples: list[tuple[int, float]] = []
    try:
        while True:
            event = await worker.event(plan.soak_limit + 60)
            if event["event"] == "progress":
                samples.append((event["done"], round(mon.rss_now(), 2)))
                log(f"  soak {server.kind}: {event['done']:,} calls, RSS {samples[-1][1]:.1f} MiB")
                continue
            break
        if "error" in event:
            raise RuntimeError(f"soak client failed: {event['error']}")
        new_conn = await new_connection_call(stack, server.port)
        settle_s = await settle(mon)
    finally:
        usage = mon.end()
    usage["settle_s"] = settle_s
    stats = await server.stats()
    res = event["result"]
    calls = res["calls"]
    steady = [p for p in samples if p[0] >= calls * 0.1]
    growth = _slope_per_100k(steady)
    first, last = samples[0][1], samples[-1][1]
    cpu_per_call = usage.get("cpu_s", 0) / calls * 1e6 if calls else 0
    failed = sum(res["failures"].values())
    details = [
        f"{calls:,} calls in {res['seconds']} s ({res['calls_per_s'] or 0:,}/s, "
        f"{plan.soak_concurrency} in flight, one connection"
        f"{', stopped by the time limit' if res['truncated_by_time_limit'] else ''}); "
        f"server CPU {cpu_per_call:.0f} us/call; failures: {res['failures'] or 'none'}",
        f"RSS {first:.1f} MiB after warm-up -> {last:.1f} MiB at the end; growth "
        + (f"{growth:+.2f} MiB per 100k calls" if growth is not None else "n/a")
        + f" (least squares over the samples from 10% on); samples (calls, MiB): {samples}",
        f"server: {_server_facts(stats)}",
    ]
    row = _row(
        usage,
        new_conn,
        None,
        "n/a (no attack)",
        details,
        res,
        stats,
        (calls, failed, res["failures"]),
        key=(
            "RSS growth "
            + (f"{growth:+.2f} MiB" if growth is not None else "n/a")
            + f" per 100k calls; {res['calls_per_s'] or 0:,} calls/s, {cpu_per_call:.0f} us "
            "server CPU per call"
        ),
    )
    row["rss_growth_mib_per_100k"] = None if growth is None else round(growth, 3)
    row["rss_samples"] = samples
    return row


SCENARIO_FUNCS: dict[str, Callable[[Ctx, ServerProc], Awaitable[dict[str, Any]]]] = {
    "rapid-reset": sc_rapid_reset,
    "steady-reset": sc_steady_reset,
    "settings-flood": sc_settings_flood,
    "ping-flood": sc_ping_flood,
    "big-metadata": sc_big_metadata,
    "cancel-storm": sc_cancel_storm,
    "soak": sc_soak,
}


def _limit(plan: Plan, scenario: str) -> float:
    """Wall-clock bound of one scenario against one server, start-up included."""
    if scenario == "cancel-storm":
        return plan.storm_limit + 240
    if scenario == "soak":
        return plan.soak_limit + 300
    return 400.0


async def run_all(ctx: Ctx, scenarios: Sequence[str], servers: Sequence[str]) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        for kind in servers:
            log(f"{scenario} / {kind}: starting")
            server = ServerProc(kind, ctx.tmp)
            try:
                await server.start()
                row = await asyncio.wait_for(
                    SCENARIO_FUNCS[scenario](ctx, server), _limit(ctx.plan, scenario)
                )
            except Exception as exc:
                ctx.reset_worker()  # its state is unknown now
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                code = server.exit_code()
                if code is not None:
                    why += f" (server exited with {code}; {server.child.tail()[-300:]})"
                row = {"error": why[:600]}
                log(f"{scenario} / {kind}: FAILED: {why[:300]}")
            else:
                code = server.exit_code()
                if code is not None:
                    row["error"] = f"server exited with {code}"
                u = row["usage"]
                log(
                    f"{scenario} / {kind}: done, server CPU {u.get('cpu_s', 0):.2f} s, RSS "
                    f"{u.get('rss_before')} / {u.get('rss_peak')} / {u.get('rss_after')} MiB, "
                    f"GOAWAY {row['goaway']}"
                )
            finally:
                server.stop()
            results.setdefault(scenario, {})[kind] = row
    ctx.reset_worker()
    return results


# ----------------------------------------------------------------------------------------
# report


def _md(text: str) -> str:
    """Text made safe for one markdown table cell."""
    return text.replace("|", "/").replace("\n", " ")


def _cell_call(call: dict[str, Any] | None) -> str:
    if call is None:
        return "—"
    if call["error"]:
        return f"FAILED ({call['error']})"
    return f"{call['ms']:.1f} ms"


def _cell_during(during: dict[str, Any] | None) -> str:
    if during is None:
        return "—"
    if not during["ok"]:
        return f"{during['n']} calls, all failed"
    return f"{during['n']} calls: p50 {during['p50_ms']:.1f} / max {during['max_ms']:.1f} ms"


def _cell_failures(row: dict[str, Any]) -> str:
    calls = row["normal_calls"]
    text = f"{calls['failed']} of {calls['made']:,}"
    if calls["errors"]:
        text += " (" + ", ".join(f"{k} {v}" for k, v in calls["errors"].items()) + ")"
    storm = row.get("storm_failures")
    if storm and storm["failed"]:
        text += f"; storm calls failing otherwise than by our cancel: {storm['failed']:,}"
    return text


def table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | server | server CPU s | RSS MiB before / peak / after | call on a new "
        "connection right after | normal calls during the attack | GOAWAY to the attacking "
        "connection | failed normal calls |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario, by_server in results.items():
        for kind, row in by_server.items():
            head = f"| {TITLES[scenario]} | {kind} |"
            if "usage" not in row:
                lines.append(f"{head} error: {_md(row['error'])} | | | | | |")
                continue
            u = row["usage"]
            rss = (
                f"{u['rss_before']:.1f} / {u['rss_peak']:.1f} / {u['rss_after']:.1f}"
                if "rss_before" in u
                else u.get("error", "?")
            )
            cpu = f"{u['cpu_s']:.2f}" if "cpu_s" in u else "?"
            goaway = _md(row["goaway"] + (f" — error: {row['error']}" if "error" in row else ""))
            lines.append(
                f"{head} {cpu} | {rss} | {_cell_call(row['new_connection_call'])} | "
                f"{_cell_during(row['during'])} | {goaway} | {_md(_cell_failures(row))} |"
            )
    return "\n".join(lines)


def key_table(results: dict[str, Any]) -> str:
    servers = [s for s in SERVERS if any(s in by for by in results.values())]
    lines = [
        "| scenario | " + " | ".join(servers) + " |",
        "|---" * (len(servers) + 1) + "|",
    ]
    for scenario, by_server in results.items():
        cells = []
        for kind in servers:
            row = by_server.get(kind)
            cells.append(
                "—" if row is None else _md(row.get("key") or f"error: {row.get('error', '?')}")
            )
        lines.append(f"| {TITLES[scenario]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(data: dict[str, Any], command: str) -> str:
    plan = data["plan"]
    out = [
        f"# rpcfw abuse benchmark, {data['date']}",
        "",
        f"Command: `{command}`",
        "",
        f"Wall time {data['elapsed_s']:.0f} s. Normal calls, the storm and the soak use the "
        f"{data['client_text']}. Each scenario runs against a fresh server process (rpcfw "
        "first, then grpc.aio), pinned to core 0; the attacker, the clients and the "
        "measuring process run on core 1. Server CPU is user + system time of the whole "
        "server process (all threads) from the start of the attack until it had been quiet "
        "for 0.5 s (so work left queued by the attack counts); RSS before / peak / after: "
        "before the attack, the highest seen (20 ms samples and VmHWM), and once it was quiet. "
        "'Call on a new connection' is one unary call on a new channel (connection setup "
        "included) made as soon as the attack ended. This is a shared, noisy 2-core machine: "
        "other test suites ran at the same time; compare the two servers, not absolutes.",
        "",
        "## Results",
        "",
        table(data["results"]),
        "",
        "Scenario-specific figures:",
        "",
        key_table(data["results"]),
        "",
        "## Details",
        "",
    ]
    for scenario, by_server in data["results"].items():
        out += [f"### {TITLES[scenario]}", ""]
        for kind, row in by_server.items():
            if "details" not in row:
                out.append(f"- {kind}: error: {row['error']}")
                continue
            for i, line in enumerate(row["details"]):
                out.append(f"- {kind}: {line}" if i == 0 else f"  - {line}")
        out.append("")
    out += [
        "## Setup",
        "",
        f"- counts: rapid reset {plan['rapid_pairs']:,} pairs; steady reset "
        f"{plan['steady_rate']:,.0f}/s for {plan['steady_seconds']:g} s; SETTINGS flood "
        f"{plan['settings_frames']:,} frames; PING flood up to {plan['pings']:,} PINGs "
        f"(attacker SO_RCVBUF 4096); metadata "
        f"{', '.join(_size_label(s) for s in plan['metadata_sizes'])}; storm "
        f"{plan['storm_workers']} processes x {plan['storm_calls']:,} calls "
        f"({plan['storm_concurrency']} in flight each, handler sleeps {plan['storm_delay_ms']} "
        f"ms, cancel after 0-{plan['storm_cancel_ms']:g} ms), then {plan['after_calls']:,} calls; "
        f"soak {plan['soak_calls']:,} calls ({plan['soak_concurrency']} in flight)",
        "- servers: rpcfw.Server with default settings (H2Config: max_concurrent_streams 100, "
        "reset bucket 1000 burst / 100 per s, ping strikes 2, 16 KiB max header list) serving "
        "tests/echo_service.py's Echo; grpc.aio.server() with default options serving the same "
        "Unary behaviour (delay_ms, abort:) written for grpc.aio",
        "- raw attacks: hyperframe frames with hpack header blocks, prebuilt and written in "
        "256 KiB chunks; the attacker reads the server's frames while writing (except in the "
        "PING flood) and records the first GOAWAY's code and debug text",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in data["machine"].items()),
        "",
    ]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------------------


def _pin_self(core: int) -> None:
    cpus = os.cpu_count() or 1
    if cpus > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core % cpus})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:3]) if __doc__ else None,
    )
    parser.add_argument("--full", action="store_true", help="4 x 20,000 storm, 1M soak calls")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count by this")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run this scenario")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument(
        "--client",
        choices=tuple(CLIENTS),
        default="rpcfw",
        help="client for normal calls, storm and soak: rpcfw's Channel for both servers "
        "(default), 'native' (rpcfw for rpcfw, grpc.aio for grpc.aio) or grpc.aio for both",
    )
    parser.add_argument("--storm-workers", type=int, help="storm client processes (4)")
    parser.add_argument("--storm-calls", type=int, help="calls per storm process")
    parser.add_argument("--storm-concurrency", type=int, help="calls in flight per process (4)")
    parser.add_argument("--soak-calls", type=int)
    parser.add_argument("--soak-concurrency", type=int, help="calls in flight (32)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--role", choices=("serve", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "serve":
        asyncio.run(_serve(args.kind))
        return
    if args.role == "worker":
        _worker_main()
        return

    plan = Plan()
    if args.full:
        plan = dataclasses.replace(plan, storm_calls=20_000, soak_calls=1_000_000)
        plan = dataclasses.replace(plan, storm_limit=400.0, soak_limit=900.0)
    plan = plan.scaled(args.scale)
    overrides = {
        "storm_workers": args.storm_workers,
        "storm_calls": args.storm_calls,
        "storm_concurrency": args.storm_concurrency,
        "soak_calls": args.soak_calls,
        "soak_concurrency": args.soak_concurrency,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v})
    scenarios = [s for s in SCENARIOS if s in args.only] if args.only else list(SCENARIOS)

    signal.signal(signal.SIGTERM, suite._on_signal)
    signal.signal(signal.SIGHUP, suite._on_signal)
    _pin_self(1)
    date = dt.datetime.now().strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    machine = suite.machine_info()
    machine["cores"] = f"{os.cpu_count()} (servers pinned to core 0, everything else to core 1)"
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="rpcfw-abuse-") as tmpdir:
            tmp = Path(tmpdir)
            log("generating code from proto/")
            suite._generate(tmp)
            sys.path.insert(0, str(tmp))
            ctx = Ctx(plan, tmp, args.client)
            results = asyncio.run(run_all(ctx, scenarios, args.servers))
    except KeyboardInterrupt:
        log("interrupted: stopping every child process; no report written")
        suite.Child.kill_all()
        sys.exit(130)
    finally:
        suite.Child.kill_all()
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    client_text = {
        "rpcfw": "rpcfw client (rpcfw.Channel) against both servers",
        "native": "rpcfw client against rpcfw and the grpc.aio client against grpc.aio",
        "grpc.aio": "grpc.aio client against both servers",
    }[args.client]
    data = {
        "date": date,
        "elapsed_s": round(time.monotonic() - started, 1),
        "client": args.client,
        "client_text": client_text,
        "plan": dataclasses.asdict(plan),
        "machine": machine,
        "results": results,
    }
    command = "python benchmarks/abuse.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render_report(data, command.strip())
    stem = f"{date}-abuse"
    (args.out / f"{stem}.md").write_text(report)
    (args.out / f"{stem}.json").write_text(json.dumps(data, indent=1, default=str))
    print(table(results))
    print()
    print(key_table(results))
    print(f"\nwrote {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()
