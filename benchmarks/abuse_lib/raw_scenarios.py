"""The raw-attack scenarios (rapid-reset, steady-reset, settings-flood, ping-flood,
big-metadata), parent side: the shared worker runs the attack (``raw_attacks``) while this
process probes the server with normal calls and samples its CPU and RSS; a reader per scenario
says what the attacker's result means in the report."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from suite_lib.client import Client

from .calls import close_client, probe_during, timed_call
from .plan import Plan
from .processes import RunContext, ServerProcess, job_result
from .procfs import Monitor
from .report import size_label
from .scenario_result import measure_aftermath, scenario_row, server_facts

__all__ = [
    "RAW_SCENARIOS",
    "RawAttackRun",
    "Reading",
    "run_raw_attack",
    "run_raw_scenario",
]


@dataclasses.dataclass
class RawAttackRun:
    """What ``run_raw_attack`` saw: the attacker's result and the server's side."""

    attack: dict[str, Any]
    usage: dict[str, Any]
    during: dict[str, Any]
    new_conn: dict[str, Any]
    stats: dict[str, Any]


async def run_raw_attack(
    ctx: RunContext,
    server: ServerProcess,
    job: dict[str, Any],
    *,
    gap: float,
    max_calls: int,
    limit: float,
) -> RawAttackRun:
    """Run one raw attack from the worker while a prober makes normal calls on its own
    connection (``gap`` seconds apart, at most ``max_calls``); then a call on a new connection;
    then wait for the server to go quiet."""
    stack = ctx.stack(server.kind)
    with Monitor(server.pid) as mon:
        prober = Client(stack, server.port)
        try:
            await timed_call(prober, message="warm-up")
            worker = ctx.shared_worker()
            worker.send({**job, "port": server.port})
            await worker.expect_ready(120, "attacker")
            mon.begin()
            worker.send({"go": True})
            attack = asyncio.ensure_future(worker.event(limit))
            try:
                during = await probe_during(prober, attack, gap, max_calls)
                event = await attack
            finally:
                attack.cancel()
        finally:
            await close_client(prober)
        result = job_result(event, "attacker")
        new_conn, usage, stats = await measure_aftermath(mon, stack, server)
    return RawAttackRun(result, usage, during, new_conn, stats)


class Reading(NamedTuple):
    """What a raw attack's result says in the report."""

    goaway: str  # the GOAWAY the attacking connection got
    details: list[str]  # (the server's counters are added)
    key: str  # the scenario-specific figure


def _handed_to_kernel(res: dict[str, Any], unit: str, what: str) -> str:
    """ "N of M <what> handed to the kernel in S s" from ``<unit>_written``/``_planned``."""
    return (
        f"{res[unit + '_written']:,} of {res[unit + '_planned']:,} {what} handed to the kernel "
        f"in {res['write_s']:.3f} s"
    )


def _read_rapid_reset(res: dict[str, Any], plan: Plan) -> Reading:
    rst = ", ".join(f"{v:,} {k}" for k, v in res["rst_stream_received"].items()) or "none"
    detail = (
        f"{_handed_to_kernel(res, 'pairs', 'pairs')}; the connection: {res['closed']}; "
        f"RST_STREAM from the server: {res['rst_stream_received'] or 'none'}"
    )
    return Reading(res["goaway_text"], [detail], f"RST_STREAM answers: {rst}")


def _read_steady_reset(res: dict[str, Any], plan: Plan) -> Reading:
    goaways = sum(res["goaways"].values())
    goaway = res["goaway_text"]
    if res["goaways"]:
        goaway += f"; {goaways} GOAWAY(s) in all"
    details = [
        f"{res['resets_written']:,} resets in {res['duration_s']} s "
        f"({res['resets_per_s'] or 0:,}/s, target {plan.steady_rate:,.0f}/s) over "
        f"{res['connections']} connection(s), {res['connections_closed_by_server']} ended by "
        f"the server; GOAWAYs: {res['goaways'] or 'none'}",
    ]
    key = (
        f"{res['resets_written']:,} resets over {res['connections']} connection(s), "
        f"{goaways} GOAWAY(s)"
    )
    return Reading(goaway, details, key)


def _read_settings_flood(res: dict[str, Any], plan: Plan) -> Reading:
    detail = (
        f"{_handed_to_kernel(res, 'frames', 'SETTINGS')}; {res['acks_received']:,} ACKs "
        f"received; the connection: {res['closed']}"
    )
    key = f"{res['acks_received']:,} SETTINGS ACKs for {res['frames_written']:,} frames"
    return Reading(res["goaway_text"], [detail], key)


def _read_ping_flood(res: dict[str, Any], plan: Plan) -> Reading:
    how = "writes stalled (server stopped reading)" if res["writes_stalled"] else ""
    if res["closed_while_writing"] != "no":
        how = f"connection {res['closed_while_writing']} while writing"
    detail = (
        f"{_handed_to_kernel(res, 'pings', 'PINGs')}{'; ' + how if how else ''}; PING ACKs the "
        f"server had queued (read afterwards): {res['acks_read_afterwards']:,}; the "
        f"connection: {res['closed']}"
    )
    key = f"{res['acks_read_afterwards']:,} PING ACKs queued for {res['pings_written']:,} PINGs"
    return Reading(res["goaway_text"], [detail], key)


def _read_big_metadata(res: dict[str, Any], plan: Plan) -> Reading:
    details = []
    goaways = []
    keys = []
    for size, entry in res.items():
        label = size_label(int(size))
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
    return Reading("; ".join(goaways), details, "; ".join(keys))


def _job(kind: str, plan: Plan) -> dict[str, Any]:
    """The worker's job for the raw attack ``kind``."""
    params: dict[str, dict[str, Any]] = {
        "rapid-reset": {"pairs": plan.rapid_pairs},
        "steady-reset": {"rate": plan.steady_rate, "seconds": plan.steady_seconds},
        "settings-flood": {"frames": plan.settings_frames},
        "ping-flood": {"pings": plan.pings},
        "big-metadata": {"sizes": list(plan.metadata_sizes)},
    }
    return {"kind": kind, **params[kind]}


def _pacing(kind: str, plan: Plan) -> tuple[float, int, float]:
    """(seconds between the prober's calls, the most calls it makes, seconds the attack may
    take) for the raw attack ``kind``."""
    if kind == "steady-reset":  # it lasts a set time: probe all along
        return 0.02, 5000, plan.steady_seconds + 60
    gap, limit = {
        "rapid-reset": (0.0, 120),
        "settings-flood": (0.0, 150),
        "ping-flood": (0.05, 120),
        "big-metadata": (0.05, 120),
    }[kind]
    return gap, plan.probe_calls, limit


_READERS: dict[str, Callable[[dict[str, Any], Plan], Reading]] = {
    "rapid-reset": _read_rapid_reset,
    "steady-reset": _read_steady_reset,
    "settings-flood": _read_settings_flood,
    "ping-flood": _read_ping_flood,
    "big-metadata": _read_big_metadata,
}


async def run_raw_scenario(kind: str, ctx: RunContext, server: ServerProcess) -> dict[str, Any]:
    """The raw attack ``kind`` against ``server``: its row."""
    plan = ctx.plan
    gap, max_calls, limit = _pacing(kind, plan)
    run = await run_raw_attack(
        ctx, server, _job(kind, plan), gap=gap, max_calls=max_calls, limit=limit
    )
    goaway, details, key = _READERS[kind](run.attack, plan)
    details = [*details, f"server: {server_facts(run.stats)}"]
    return scenario_row(
        run.usage, run.new_conn, run.during, goaway, details, run.attack, run.stats, key=key
    )


# scenario -> its function (ctx, server) -> row
RAW_SCENARIOS = {kind: functools.partial(run_raw_scenario, kind) for kind in _READERS}
