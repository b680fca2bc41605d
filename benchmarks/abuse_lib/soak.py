"""The soak: many unary calls over one connection from the shared worker, the server's RSS
sampled every 10% of them; its growth per 100k calls (least squares) is the figure."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from suite_lib.client import Client

from .calls import CALL_TIMEOUT, close_client, error_name, run_workers
from .log import log
from .processes import RunContext, ServerProcess, job_result
from .procfs import Monitor
from .scenario_result import measure_aftermath, scenario_row, server_facts

__all__ = ["rss_growth_per_100k", "soak", "soak_client"]


async def soak_client(
    job: dict[str, Any], ready: Callable[[], None], progress: Callable[[int], None]
) -> dict[str, Any]:
    """Worker side: ``calls`` unary calls over one connection, ``concurrency`` at a time, in
    ten slices; ``progress(calls done)`` before the first and after each slice lets the parent
    sample the server's RSS. ``ready()`` returns on the parent's "go"."""
    client = Client(job["stack"], job["port"])
    req = client.Req(message="soak")
    failures: Counter[str] = Counter()
    done = 0

    async def one_call() -> None:
        nonlocal done
        try:
            await client.unary(req, timeout=CALL_TIMEOUT)
        except Exception as exc:
            failures[error_name(exc)] += 1
        done += 1

    try:
        warm = min(2000, max(10, job["calls"] // 20))
        async with asyncio.timeout(CALL_TIMEOUT + 30):
            for _ in range(warm):
                await client.unary(req, timeout=CALL_TIMEOUT)
        await asyncio.to_thread(ready)
        start = time.monotonic()
        stop_at = start + job["limit"]
        progress(0)
        for step in range(1, 11):
            calls = job["calls"] * step // 10 - done
            await run_workers(job["concurrency"], calls, one_call, stop_at)
            progress(done)
            if time.monotonic() >= stop_at:
                break
        elapsed = time.monotonic() - start
    finally:
        await close_client(client)
    return {
        "calls": done,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(done / elapsed) if elapsed else None,
        "failures": dict(failures),
        "truncated_by_time_limit": done < job["calls"],
    }


def rss_growth_per_100k(points: list[tuple[int, float]]) -> float | None:
    """The least-squares slope of (calls, RSS MiB) points, in MiB per 100k calls."""
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 100_000


async def soak(ctx: RunContext, server: ServerProcess) -> dict[str, Any]:
    plan = ctx.plan
    stack = ctx.stack(server.kind)
    samples: list[tuple[int, float]] = []
    with Monitor(server.pid) as mon:
        worker = ctx.shared_worker()
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
        await worker.expect_ready(180, "soak client")
        mon.begin()
        worker.send({"go": True})
        while (event := await worker.event(plan.soak_limit + 60))["event"] == "progress":
            samples.append((event["done"], round(mon.rss_now(), 2)))
            log(f"  soak {server.kind}: {event['done']:,} calls, RSS {samples[-1][1]:.1f} MiB")
        res = job_result(event, "soak client")
        new_conn, usage, stats = await measure_aftermath(mon, stack, server)
    calls = res["calls"]
    growth = rss_growth_per_100k([p for p in samples if p[0] >= calls * 0.1])
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
        f"server: {server_facts(stats)}",
    ]
    row = scenario_row(
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
