"""One scenario's result for one server: what is measured once the attack is over, the row
(of the report and of the JSON) it makes, and the server counters its details end with."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .calls import new_connection_call
from .processes import ServerProcess
from .procfs import Monitor, wait_until_quiet

__all__ = ["measure_aftermath", "scenario_row", "server_facts"]


async def measure_aftermath(
    mon: Monitor, stack: str, server: ServerProcess
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Right after an attack: a call on a new connection, then wait until the server is quiet
    and end ``mon``. Returns (that call, the server's usage from ``mon``, its stats)."""
    try:
        new_conn = await new_connection_call(stack, server.port)
        quiet_s = await wait_until_quiet(mon)
    finally:
        usage = mon.end()
    usage["settle_s"] = quiet_s
    return new_conn, usage, await server.stats()


def scenario_row(
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
    """One scenario's result for one server; ``key`` is its scenario-specific figure and
    ``other_calls`` (made, failed, error kinds) the normal calls made besides the call on a new
    connection and those ``during`` the attack."""
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


def server_facts(stats: dict[str, Any] | None) -> str:
    """The server's counters that say what an attack did to it, as text."""
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
