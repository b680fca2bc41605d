"""The cancellation storm: storm clients (worker processes) make calls to a handler that
sleeps and cancel each after a random few ms, while this process probes the server; then a
batch of normal calls shows whether the server recovered."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from suite_lib.client import Client

from .calls import (
    CALL_TIMEOUT,
    calls_after,
    close_client,
    error_name,
    new_connection_call,
    probe_during,
    run_workers,
    timed_call,
)
from .processes import RunContext, ServerProcess, job_result, stop_all
from .procfs import Monitor, wait_until_quiet
from .scenario_result import scenario_row, server_facts

__all__ = ["cancel_storm", "storm_client"]

_FINE = ("cancelled", "completed", "completed although cancelled")  # storm call outcomes


async def storm_client(job: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Worker side: ``calls`` calls, ``concurrency`` at a time, each to a handler that sleeps
    ``delay_ms`` and each cancelled (the call's task is cancelled: the client resets the
    stream) after a random 0..``cancel_ms`` ms. ``ready()`` returns on the parent's "go"."""
    client = Client(job["stack"], job["port"])
    rng = random.Random(job["seed"])
    req = client.Req(message="storm", delay_ms=job["delay_ms"])
    outcomes: Counter[str] = Counter()
    late_ms = 0.0  # the longest call that completed although its cancellation was due earlier

    async def one_call() -> None:
        nonlocal late_ms
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
            outcomes[error_name(exc)] += 1

    try:
        async with asyncio.timeout(CALL_TIMEOUT + 5):
            await client.unary(client.Req(message="warm-up"), timeout=CALL_TIMEOUT)
        await asyncio.to_thread(ready)
        start = time.monotonic()
        await run_workers(job["concurrency"], job["calls"], one_call, start + job["limit"])
        elapsed = time.monotonic() - start
    finally:
        await close_client(client)
    made = sum(outcomes.values())
    return {
        "calls": made,
        "seconds": round(elapsed, 2),
        "outcomes": dict(outcomes),
        "late_ms": round(late_ms, 1),
    }


@dataclasses.dataclass
class _StormRun:
    """What the parent saw of one storm."""

    results: list[dict[str, Any]]  # each storm client's
    storm_s: float
    before: dict[str, Any]  # server stats before the storm, at its end, once handlers drained
    at_end: dict[str, Any]
    stats: dict[str, Any]
    during: dict[str, Any]
    new_conn: dict[str, Any]
    after: dict[str, Any]
    drain_s: float
    usage: dict[str, Any]


async def _run_storm(ctx: RunContext, server: ServerProcess) -> _StormRun:
    plan = ctx.plan
    stack = ctx.stack(server.kind)
    workers = [ctx.new_worker(f"storm{i}") for i in range(plan.storm_workers)]
    with Monitor(server.pid) as mon:
        prober = Client(stack, server.port)
        try:
            await timed_call(prober, message="warm-up")
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
                await worker.expect_ready(120, "storm client")
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
            results = [job_result(event, "storm client") for event in events]
            at_end = await server.stats()
            new_conn = await new_connection_call(stack, server.port)
            after = await calls_after(stack, server.port, plan.after_calls, plan.after_concurrency)
            drain_start = time.monotonic()
            for _ in range(300):  # handlers still sleeping: at most 30 s
                stats = await server.stats()
                if not stats["running"]:
                    break
                await asyncio.sleep(0.1)
            quiet_s = await wait_until_quiet(mon)
            drain_s = round(time.monotonic() - drain_start, 2)
        finally:
            await close_client(prober)
            stop_all(workers, 2.0)
        usage = mon.end()
    usage["settle_s"] = quiet_s
    return _StormRun(
        results, storm_s, before, at_end, stats, during, new_conn, after, drain_s, usage
    )


def _goaway_text(before: dict[str, Any], at_end: dict[str, Any]) -> str:
    """Whether the server ended storm connections for abuse (rpcfw counts them)."""
    if "connections_ended_for_abuse" not in at_end:
        return "not observable (no server counter)"
    ended = at_end["connections_ended_for_abuse"] - before["connections_ended_for_abuse"]
    if ended:
        return f"yes: {ended} client connection(s) ended for abuse (server counter)"
    return "none (server counter)"


async def cancel_storm(ctx: RunContext, server: ServerProcess) -> dict[str, Any]:
    plan = ctx.plan
    run = await _run_storm(ctx, server)
    before, at_end, after = run.before, run.at_end, run.after
    outcomes: Counter[str] = Counter()
    calls = 0
    for result in run.results:
        outcomes.update(result["outcomes"])
        calls += result["calls"]
    seconds = max(r["seconds"] for r in run.results)
    reconnects = at_end["connections_seen_by_handlers"] - before["connections_seen_by_handlers"]
    bad = {k: v for k, v in outcomes.items() if k not in _FINE}
    late = outcomes.get("completed although cancelled", 0)
    late_ms = max(r["late_ms"] for r in run.results)
    handled = at_end["calls"] - before["calls"]
    killed = at_end["cancelled"] - before["cancelled"]
    details = [
        f"{calls:,} calls by {plan.storm_workers} clients x {plan.storm_concurrency} in flight "
        f"in {seconds} s ({calls / seconds if seconds else 0:,.0f}/s; storm phase "
        f"{run.storm_s} s): {outcomes.get('cancelled', 0):,} cancelled by us, "
        f"{outcomes.get('completed', 0):,} completed before their cancel, other outcomes: "
        f"{bad or 'none'}; {handled:,} reached a handler, {killed:,} handlers were cancelled; "
        f"new connections opened by the clients during the storm: {reconnects}",
        f"right after: {after['n']:,} calls (10 s deadline, {plan.after_concurrency} in flight, "
        f"new connection): {after['deadline_exceeded']} hit the deadline, {after['failed']} "
        f"failed in all{' ' + str(after['errors']) if after['errors'] else ''}, p50 "
        f"{after['p50_ms']} ms, max {after['max_ms']} ms; handlers drained and CPU quiet "
        f"{run.drain_s} s after the storm",
        f"server at the storm's end: {server_facts(at_end)}",
    ]
    if late:
        details.insert(
            1,
            f"{late} call(s) completed although their cancellation was due after at most "
            f"{plan.storm_cancel_ms:g} ms (the client let the call go on; the longest took "
            f"{late_ms:.0f} ms)",
        )
    storm_failed = sum(bad.values())
    row = scenario_row(
        run.usage,
        run.new_conn,
        run.during,
        _goaway_text(before, at_end),
        details,
        {"storm": run.results, "after_calls": after},
        run.stats,
        (after["n"], after["failed"], after["errors"]),
        key=(
            f"{handled:,} handlers reached, {killed:,} cancelled; storm calls failed: "
            f"{storm_failed}"
            + (f", {late} ran on after their cancel" if late else "")
            + f"; {after['deadline_exceeded']} of {after['n']:,} calls after hit the 10 s "
            f"deadline (p50 {after['p50_ms']} / max {after['max_ms']} ms)"
        ),
    )
    row["storm_failures"] = {"failed": storm_failed, "of": calls, "kinds": bad}
    row["after_calls"] = after
    return row
