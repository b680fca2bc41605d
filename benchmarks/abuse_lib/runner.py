"""Running the selected scenarios: each against a fresh server process of each kind, bounded
in time; a failed scenario becomes an error row and the run goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .log import log
from .plan import Plan
from .processes import RunContext, ServerProcess
from .raw_scenarios import RAW_SCENARIOS
from .soak import soak
from .storm import cancel_storm

__all__ = ["SCENARIO_RUNNERS", "run_scenarios", "scenario_time_limit"]

SCENARIO_RUNNERS: dict[str, Callable[[RunContext, ServerProcess], Awaitable[dict[str, Any]]]] = {
    **RAW_SCENARIOS,
    "cancel-storm": cancel_storm,
    "soak": soak,
}


def scenario_time_limit(plan: Plan, scenario: str) -> float:
    """Wall-clock bound of one scenario against one server, start-up included."""
    if scenario == "cancel-storm":
        return plan.storm_limit + 240
    if scenario == "soak":
        return plan.soak_limit + 300
    return 400.0


async def _run_one(ctx: RunContext, scenario: str, kind: str) -> dict[str, Any]:
    """``scenario`` against a new server of ``kind``: its row, or {"error": why}."""
    log(f"{scenario} / {kind}: starting")
    server = ServerProcess(kind, ctx.tmp)
    try:
        await server.start()
        row = await asyncio.wait_for(
            SCENARIO_RUNNERS[scenario](ctx, server), scenario_time_limit(ctx.plan, scenario)
        )
    except Exception as exc:
        ctx.reset_shared_worker()  # its state is unknown now
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
    return row


async def run_scenarios(
    ctx: RunContext, scenarios: Sequence[str], servers: Sequence[str]
) -> dict[str, Any]:
    """{scenario: {server kind: row}} for every scenario against every server, in order."""
    results: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        for kind in servers:
            results.setdefault(scenario, {})[kind] = await _run_one(ctx, scenario, kind)
    ctx.reset_shared_worker()
    return results
