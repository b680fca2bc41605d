"""The abuse benchmark's markdown report: the results table, the table of scenario-specific
figures, the details of each scenario, the setup and the machine."""

from __future__ import annotations

from typing import Any

from .plan import SERVERS, TITLES

__all__ = ["figures_table", "render_report", "results_table", "size_label"]


def size_label(size: int) -> str:
    """A metadata size as the report names it: "100 KB", "1 MiB"."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    return f"{size / 1000:g} KB"


def _escape_cell(text: str) -> str:
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


def results_table(results: dict[str, Any]) -> str:
    """The main table: a row per scenario and server."""
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
                lines.append(f"{head} error: {_escape_cell(row['error'])} | | | | | |")
                continue
            u = row["usage"]
            rss = (
                f"{u['rss_before']:.1f} / {u['rss_peak']:.1f} / {u['rss_after']:.1f}"
                if "rss_before" in u
                else u.get("error", "?")
            )
            cpu = f"{u['cpu_s']:.2f}" if "cpu_s" in u else "?"
            error = f" — error: {row['error']}" if "error" in row else ""
            goaway = _escape_cell(row["goaway"] + error)
            lines.append(
                f"{head} {cpu} | {rss} | {_cell_call(row['new_connection_call'])} | "
                f"{_cell_during(row['during'])} | {goaway} | {_escape_cell(_cell_failures(row))} |"
            )
    return "\n".join(lines)


def figures_table(results: dict[str, Any]) -> str:
    """Each scenario's specific figure (its row's ``key``), the servers side by side."""
    servers = [s for s in SERVERS if any(s in by for by in results.values())]
    lines = [
        "| scenario | " + " | ".join(servers) + " |",
        "|---" * (len(servers) + 1) + "|",
    ]
    for scenario, by_server in results.items():
        cells = []
        for kind in servers:
            row = by_server.get(kind)
            if row is None:
                cells.append("—")
            else:
                cells.append(_escape_cell(row.get("key") or f"error: {row.get('error', '?')}"))
        lines.append(f"| {TITLES[scenario]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_report(data: dict[str, Any], command: str) -> str:
    """The markdown report of ``data`` (what is written as JSON) run by ``command``."""
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
        results_table(data["results"]),
        "",
        "Scenario-specific figures:",
        "",
        figures_table(data["results"]),
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
        f"{', '.join(size_label(s) for s in plan['metadata_sizes'])}; storm "
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
