"""A bounded load loop for balancing tests: counts replies per server and failures by status."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import rpcfw

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    per_server: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.per_server.values()) + sum(self.failures.values())


async def run_load(
    mod: ModuleType,
    stub: Any,
    *,
    workers: int = 8,
    calls: int = 400,
    seconds: float = 10.0,
    delay_ms: int = 0,
    stop: asyncio.Event | None = None,
    result: LoadResult | None = None,
    **options: Any,
) -> LoadResult:
    """Up to ``calls`` unary calls from ``workers`` tasks, for at most ``seconds`` (or until
    ``stop`` is set). Counts go to ``result`` if given, as they happen (a test waits on them)."""
    result = LoadResult() if result is None else result
    remaining = calls
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and loop.time() < end and not (stop and stop.is_set()):
            remaining -= 1
            try:
                reply = await stub.unary(
                    mod.EchoRequest(message="load", delay_ms=delay_ms), **options
                )
                result.per_server[reply.server_id] += 1
            except rpcfw.RpcError as exc:
                result.failures[exc.status.name] += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return result
