"""Normal calls, as a well-behaved client makes them (through ``suite_lib.client.Client``):
single timed calls, a call on a new connection, calls probing a server while an attack runs, a
batch of calls after one; and the status name of a failed call, whichever client raised it."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from suite_lib.client import Client

__all__ = [
    "CALL_TIMEOUT",
    "NEW_CONNECTION_TIMEOUT",
    "calls_after",
    "close_client",
    "error_name",
    "new_connection_call",
    "probe_during",
    "run_workers",
    "timed_call",
    "to_ms",
]

CALL_TIMEOUT = 10.0  # deadline of every normal call
NEW_CONNECTION_TIMEOUT = 30.0


def error_name(exc: BaseException) -> str:
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


async def close_client(client: Any) -> None:
    """Close ``client``, giving up (quietly) after 5 s or on any error."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.close()


async def run_workers(
    concurrency: int, calls: int, one_call: Callable[[], Awaitable[None]], stop_at: float
) -> None:
    """Up to ``calls`` runs of ``one_call``, ``concurrency`` at a time, none started after
    ``stop_at`` (``time.monotonic()``)."""
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0 and time.monotonic() < stop_at:
            left -= 1
            await one_call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def to_ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def timed_call(
    client: Any, deadline_s: float = CALL_TIMEOUT, message: str = "probe"
) -> float:
    """One unary call with a ``deadline_s`` deadline; returns its latency in seconds."""
    start = time.perf_counter()
    async with asyncio.timeout(deadline_s + 5):
        await client.unary(client.Req(message=message), timeout=deadline_s)
    return time.perf_counter() - start


async def new_connection_call(stack: str, port: int) -> dict[str, Any]:
    """One unary call on a new channel (so a new connection: its setup is in the latency)."""
    client = Client(stack, port)
    try:
        return {"ms": to_ms(await timed_call(client, NEW_CONNECTION_TIMEOUT)), "error": None}
    except Exception as exc:
        return {"ms": None, "error": error_name(exc)}
    finally:
        await close_client(client)


def _latency_summary(lat: list[float], errors: Counter[str], made: int) -> dict[str, Any]:
    return {
        "n": made,
        "ok": len(lat),
        "p50_ms": to_ms(statistics.median(lat)) if lat else None,
        "max_ms": to_ms(max(lat)) if lat else None,
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
            lat.append(await timed_call(client))
        except Exception as exc:
            errors[error_name(exc)] += 1
        if gap and not attack.done():
            await asyncio.wait([attack], timeout=gap)
    return _latency_summary(lat, errors, made)


async def calls_after(stack: str, port: int, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` calls with a 10 s deadline on one new connection, ``concurrency`` at a time."""
    client = Client(stack, port)
    lat: list[float] = []
    errors: Counter[str] = Counter()

    async def one_call() -> None:
        try:
            lat.append(await timed_call(client))
        except Exception as exc:
            errors[error_name(exc)] += 1

    try:
        await run_workers(concurrency, n, one_call, stop_at=float("inf"))
    finally:
        await close_client(client)
    out = _latency_summary(lat, errors, n)
    out["deadline_exceeded"] = errors.get("DEADLINE_EXCEEDED", 0) + errors.get(
        "no answer (local timeout)", 0
    )
    return out
