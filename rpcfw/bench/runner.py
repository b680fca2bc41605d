"""Drive rpcfw Channels with N workers over M connections and measure (the IO part).

Closed loop (default): every worker starts its next call as soon as the previous one ended.
Open loop (``rate``): calls are due at fixed intervals (:class:`OpenLoopSchedule`) and a
call's latency counts from when it was due, so queueing behind a slow server is not hidden.

Always bounded: by ``total`` calls and by ``duration`` seconds (calls in flight then get up
to their ``timeout`` to finish, after which they are cancelled). The run stops early when no
call has succeeded and ``fail_fast_after`` calls failed with UNAVAILABLE (target unreachable),
or on SIGINT when ``stop_on_sigint`` (calls in flight are cancelled, what was measured stays).

Warm-up: the first ``warmup_calls`` calls, and calls started in the first ``warmup_seconds``,
run but are not measured; ``total`` counts measured calls, ``duration`` starts after
``warmup_seconds``, and rates and elapsed time are of the measured part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._method import MethodSpec
from .._status import Cardinality, Status
from .._tasks import cancel_and_wait
from ..client import Channel
from ..errors import RpcError
from ..metadata import MetadataValue
from ..tls import ChannelTLS
from .histogram import LatencyHistogram
from .progress import ProgressLine, ProgressMeter, ProgressSample
from .report import PERCENTILES, BenchResult
from .schedule import OpenLoopSchedule, latency_from_intended

__all__ = ["KINDS", "BenchConfig", "BenchRun", "run_bench"]

_log = logging.getLogger(__name__)

KINDS = {
    Cardinality.UNARY_UNARY: "unary",
    Cardinality.UNARY_STREAM: "server-stream",
    Cardinality.STREAM_UNARY: "client-stream",
    Cardinality.STREAM_STREAM: "bidi",
}


@dataclass(slots=True)
class BenchConfig:
    """What ``rpcfw bench`` runs: the method and request, workers and connections, duration or total
    calls, an open-loop ``rate`` (None: closed loop), the balancer and the per-call timeout."""

    target: str
    spec: MethodSpec[Any, Any]
    request: Any
    concurrency: int = 50
    connections: int = 1
    duration: float = 10.0
    total: int | None = None
    rate: float | None = None
    balancer: str = "pick_first"
    timeout: float = 20.0
    stream_messages: int = 10
    fail_fast_after: int = 5
    progress: bool = False
    metadata: list[tuple[str, MetadataValue]] = field(default_factory=list)
    tls: ChannelTLS | None = None
    warmup_calls: int = 0
    warmup_seconds: float = 0.0
    stop_on_sigint: bool = False


@dataclass(slots=True)
class BenchRun:
    """Counters while a run goes on (one event loop: no locks needed)."""

    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    started: int = 0
    first_error: str | None = None
    stopped_early: str | None = None
    unreachable: bool = False
    interrupted: bool = False
    per_second: list[int] = field(default_factory=list)
    warmup: int = 0  # calls run during the warm-up (not measured)
    measure_start: float | None = None  # loop time the measured part began

    @property
    def done(self) -> int:
        return self.ok + sum(self.errors.values())


CallFn = Callable[[Channel], Awaitable[tuple[int, int]]]


def _call_fn(config: BenchConfig) -> CallFn:
    """One call of the configured kind; returns (messages sent, messages received)."""
    spec, request, timeout = config.spec, config.request, config.timeout
    metadata = config.metadata or None
    burst = [request] * config.stream_messages
    kind = spec.cardinality

    if kind is Cardinality.UNARY_UNARY:

        async def call(channel: Channel) -> tuple[int, int]:
            await channel.unary_unary(spec, request, timeout=timeout, metadata=metadata)
            return 1, 1

    elif kind is Cardinality.UNARY_STREAM:

        async def call(channel: Channel) -> tuple[int, int]:
            received = 0
            replies = channel.unary_stream(spec, request, timeout=timeout, metadata=metadata)
            async with contextlib.aclosing(replies):  # type: ignore[type-var]
                async for _ in replies:
                    received += 1
            return 1, received

    elif kind is Cardinality.STREAM_UNARY:

        async def call(channel: Channel) -> tuple[int, int]:
            await channel.stream_unary(spec, burst, timeout=timeout, metadata=metadata)
            return len(burst), 1

    else:

        async def call(channel: Channel) -> tuple[int, int]:
            received = 0
            replies = channel.stream_stream_iter(spec, burst, timeout=timeout, metadata=metadata)
            async with contextlib.aclosing(replies):  # type: ignore[type-var]
                async for _ in replies:
                    received += 1
            return len(burst), received

    return call


class _Bench:
    def __init__(self, config: BenchConfig, channels: list[Channel]) -> None:
        self.config = config
        self.channels = channels
        self.run = BenchRun()
        self.call = _call_fn(config)
        self.loop = asyncio.get_running_loop()
        self.line = ProgressLine(sys.stderr) if config.progress else None  # before the clock
        self.start = self.loop.time()
        self.warmup_end = self.start + config.warmup_seconds
        self.end = self.warmup_end + config.duration
        self.stop = asyncio.Event()
        self.taken = 0  # calls given a start time, warm-up included
        self.measured = 0  # of which measured
        self.schedule = (
            None
            if config.rate is None
            else OpenLoopSchedule(config.rate, self.start, total=None, end=self.end)
        )

    def _next_start(self) -> tuple[float, bool] | None:
        """When the next call is due (closed loop: now) and whether it is measured (not a
        warm-up call), or None when the run is over."""
        total = self.config.total
        if self.stop.is_set() or (total is not None and self.measured >= total):
            return None
        if self.schedule is not None:
            due = self.schedule.take()
            if due is None:
                return None
        else:
            due = self.loop.time()
            if due >= self.end:
                return None
        measured = self.taken >= self.config.warmup_calls and due >= self.warmup_end
        self.taken += 1
        if not measured:
            self.run.warmup += 1
        else:
            self.measured += 1
            if self.run.measure_start is None:
                self.run.measure_start = due
        return due, measured

    def interrupt(self) -> None:
        """SIGINT: stop now; calls in flight are cancelled, the partial result stays."""
        self.run.interrupted = True
        self.run.stopped_early = "interrupted (SIGINT): calls in flight cancelled"
        self.stop.set()

    def _record_error(self, status: str, text: str) -> None:
        run = self.run
        run.errors[status] = run.errors.get(status, 0) + 1
        if run.first_error is None:
            run.first_error = text
        if (
            run.ok == 0
            and run.errors.get("UNAVAILABLE", 0) >= self.config.fail_fast_after
            and not run.unreachable
        ):
            run.unreachable = True
            run.stopped_early = (
                f"no call succeeded and {run.errors['UNAVAILABLE']} failed with UNAVAILABLE"
            )
            self.stop.set()

    async def worker(self, index: int) -> None:
        channel = self.channels[index % len(self.channels)]
        run = self.run
        while (slot := self._next_start()) is not None:
            due, measured = slot
            delay = due - self.loop.time()
            if delay > 0:  # open loop, ahead of schedule (a stop cancels the sleep)
                await asyncio.sleep(delay)
            run.started += 1
            try:
                sent, received = await self.call(channel)
            except RpcError as exc:
                if measured:
                    self._record_error(exc.status.name, str(exc))
                continue
            except Exception as exc:
                if measured:
                    self._record_error(Status.UNKNOWN.name, f"{type(exc).__name__}: {exc}")
                continue
            if not measured:
                continue
            done = self.loop.time()
            run.histogram.record(latency_from_intended(due, done))
            run.ok += 1
            run.sent += sent
            run.received += received
            second = int(done - (run.measure_start or self.start))
            while len(run.per_second) <= second:
                run.per_second.append(0)
            run.per_second[second] += 1

    def progress_sample(self) -> ProgressSample:
        """Where the run is now, for the progress line."""
        run = self.run
        now = self.loop.time()
        warming = run.measure_start is None and (
            self.config.warmup_calls > 0 or self.config.warmup_seconds > 0
        )
        if warming:
            return ProgressSample(now - self.start, run.warmup, warmup=True)
        elapsed = now - (run.measure_start or self.start)
        return ProgressSample(elapsed, run.done, sum(run.errors.values()))

    @contextlib.asynccontextmanager
    async def progress_shown(self) -> AsyncIterator[None]:
        """Show the progress line on stderr while the body runs (when ``config.progress``),
        from a task this run owns, cancelled and awaited at the end whatever ends the body."""
        if self.line is None:
            yield
            return
        meter = ProgressMeter(self.config.duration, self.config.total)
        task = asyncio.create_task(self.line.run(self.progress_sample, meter))
        try:
            yield
        finally:
            await cancel_and_wait(task, _log, "the bench progress line")

    async def execute(self) -> float:
        async with self.progress_shown():
            return await self._execute()

    async def _execute(self) -> float:
        config = self.config
        if config.stop_on_sigint:  # a second SIGINT gets Python's default again
            self.loop.add_signal_handler(signal.SIGINT, self._first_sigint)
        workers = [asyncio.ensure_future(self.worker(i)) for i in range(config.concurrency)]
        # past the end, calls in flight get their timeout to finish; then they are cancelled
        hard_end = self.end + config.timeout + 1.0
        try:
            pending: set[asyncio.Future[Any]] = set(workers)
            while pending:
                timeout = hard_end - self.loop.time()
                if timeout <= 0:
                    break
                stopper = asyncio.ensure_future(self.stop.wait())
                _, pending = await asyncio.wait(
                    pending | {stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                stopper.cancel()
                pending.discard(stopper)
                if self.stop.is_set() and (self.run.unreachable or self.run.interrupted):
                    break
        finally:
            if config.stop_on_sigint:
                self.loop.remove_signal_handler(signal.SIGINT)
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return self.loop.time() - (self.run.measure_start or self.start)

    def _first_sigint(self) -> None:
        self.loop.remove_signal_handler(signal.SIGINT)
        self.interrupt()


async def run_bench(config: BenchConfig) -> tuple[BenchResult, BenchRun]:
    """Run the benchmark ``config`` describes. Raises ValueError for a bad target/balancer."""
    if config.concurrency < 1 or config.connections < 1:
        raise ValueError("concurrency and connections must be at least 1")
    channels = [
        Channel(config.target, balancer=config.balancer, tls=config.tls)
        for _ in range(config.connections)
    ]
    try:
        bench = _Bench(config, channels)
        elapsed = await bench.execute()
    finally:
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)
    run = bench.run
    hist = run.histogram
    latency: dict[str, float] = {}
    if hist.count:
        latency = {
            "min": hist.min_ns / 1e6,
            "mean": hist.mean_ns / 1e6,
            **hist.percentiles_ms(PERCENTILES),
            "max": hist.max_ns / 1e6,
        }
    result = BenchResult(
        target=config.target,
        method=config.spec.path.lstrip("/"),
        kind=KINDS[config.spec.cardinality],
        concurrency=config.concurrency,
        connections=config.connections,
        rate=config.rate,
        elapsed_s=elapsed,
        ok=run.ok,
        errors=dict(run.errors),
        messages_sent=run.sent,
        messages_received=run.received,
        latency_ms=latency,
        histogram=[(b.upper_ns / 1e6, b.count) for b in hist.text_buckets()],
        histogram_text=hist.render_text() if hist.count else "",
        first_error=run.first_error,
        stopped_early=run.stopped_early,
        ok_per_second=list(run.per_second),
        warmup_calls=run.warmup,
    )
    return result, run
