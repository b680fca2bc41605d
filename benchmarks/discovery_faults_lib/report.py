"""The markdown report of ``benchmarks/discovery_faults.py`` (from its JSON data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["render"]

MAX_TIMELINE_ROWS = 90


def s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def window(w: Mapping[str, Any] | None) -> str:
    if not w:
        return "none"
    text = f"{w['duration_s']:.2f} s ({w['from_s']:.2f} → {w['to_s']:.2f})"
    return text + (", still open at the end" if w.get("open_at_end") else "")


def windows(summary: Mapping[str, Any]) -> str:
    if not summary["count"]:
        return "none"
    return f"{window(summary['longest'])}; {summary['count']} window(s), {summary['total_s']:.2f} s"


def counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.items()) or "none"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _hang_warnings(run: Mapping[str, Any]) -> str:
    return counts(run["metrics"]["warnings_during_hang"])


def wipe_summary(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for run in runs:
        m = run["metrics"]
        rereg = m["reregistered"]
        keys = " / ".join(s(v["key_back_s"]) for v in rereg.values())
        leases = max(
            (v["lease_renewed_s"] for v in rereg.values() if v["lease_renewed_s"] is not None),
            default=None,
        )
        rows.append(
            [
                run["run"],
                s(m["etcd_back_s"]),
                f"{keys} (max {s(m['all_keys_back_s'])})",
                s(leases),
                windows(m["channel_missing_running_server"]),
                windows(m["channel_empty"]),
                window(m["zero_success_longest_after_fault"]),
                m["ok_after_fault"],
                counts(m["failures_after_fault"]),
            ]
        )
    return table(
        [
            "run",
            "etcd back",
            "keys back in etcd (" + " / ".join(runs[0]["metrics"]["reregistered"]) + ")",
            "leases renewed (max)",
            "channel set missing a running server",
            "channel set empty",
            "longest time without a successful call",
            "OK calls",
            "failed calls",
        ],
        rows,
    )


def hang_summary(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for run in runs:
        m = run["metrics"]
        rows.append(
            [
                run["run"],
                window(m["zero_success_longest_during_hang"]),
                window(m["zero_success_longest_after_resume"]),
                f"{s(m['channel_equals_live_after_resume_s'])} / "
                f"{s(m['channel_equals_live_stable_after_resume_s'])}",
                f"{s(m['new_server_key_after_resume_s'])} / "
                f"{s(m['new_server_in_channel_after_resume_s'])} / "
                f"{s(m['new_server_first_call_after_resume_s'])}",
                s(m["killed_left_channel_after_resume_s"]),
                windows(m["survivor_keys_missing_in_etcd_after_resume"]),
                windows(m["channel_missing_survivor_after_resume"]),
                counts(m["failures_during_hang"]),
                counts(m["failures_after_resume"]),
                _hang_warnings(run),
            ]
        )
    return table(
        [
            "run",
            "longest without OK, during hang",
            "longest without OK, after resume",
            "channel = live servers after resume (first / for good)",
            "new server after resume: key / in channel / first call",
            "killed server left the channel (after resume)",
            "survivors' keys missing in etcd after resume",
            "channel missing a survivor after resume",
            "failed during hang",
            "failed after resume",
            "rpcfw warnings during hang",
        ],
        rows,
    )


def timeline(run: Mapping[str, Any]) -> list[str]:
    rows: list[tuple[float, int, str]] = []
    for e in run["events"]:
        rows.append((e["t"], 0, f"**{e['what']}**"))
    channel = run["channel_transitions"]
    for c in channel:
        rows.append(
            (c["t"], 1, f"channel: endpoints {c['endpoints']}, READY {c['ready']}, {c['state']}")
        )
    for k in run["key_transitions"]:
        rows.append((k["t"], 2, f"etcd keys: {k['keys']} (poll {k['poll_latency_s']:.3f} s)"))
    for lease in run["lease_transitions"]:
        rows.append((lease["t"], 3, f"lease of {lease['server']}: {lease['lease']}"))
    rows.sort()
    # from just before the fault: the state at that time plus everything after it
    before = [r for r in rows if r[0] < -0.5]
    last_of_kind: dict[int, tuple[float, int, str]] = {}
    for r in before:
        if r[1] in (1, 2):
            last_of_kind[r[1]] = r
    shown = sorted(last_of_kind.values()) + [r for r in rows if r[0] >= -0.5]
    hidden = max(0, len(shown) - MAX_TIMELINE_ROWS)
    lines = table(
        ["t (s)", "what"], [(f"{t:.2f}", what) for t, _, what in shown[:MAX_TIMELINE_ROWS]]
    )
    if hidden:
        lines.append(f"\n({hidden} more rows in the JSON)")
    return lines


def logs(run: Mapping[str, Any]) -> list[str]:
    if not run["logs"]:
        return ["No rpcfw log record at WARNING or above."]
    return table(
        ["first (s)", "last (s)", "count", "logger", "level", "message (first one)"],
        [
            (
                f"{g['first_s']:.2f}",
                f"{g['last_s']:.2f}",
                g["count"],
                g["logger"],
                g["level"],
                g["message"][:300],
            )
            for g in run["logs"]
        ],
    )


def per_second(run: Mapping[str, Any]) -> list[str]:
    servers = list(run["servers"])
    rows = []
    for row in run["per_second"]:
        rows.append(
            [
                f"[{row['second']}, {row['second'] + 1})",
                *(row["ok"].get(name, 0) for name in servers),
                counts(row["failed"]) if row["failed"] else "",
            ]
        )
    return table(["second", *(f"OK {name}" for name in servers), "failed"], rows)


def run_details(run: Mapping[str, Any]) -> list[str]:
    m = run["metrics"]
    servers = ", ".join(
        f"{name} = port {info['port']} ({info['kind']})" for name, info in run["servers"].items()
    )
    out = [f"## {run['scenario']}, run {run['run']}", "", f"Servers: {servers}.", ""]
    if run["scenario"] == "wipe":
        out += [
            f"- etcd healthy again (empty) at {s(m['etcd_back_s'])}",
            "- re-registered (key seen in etcd / registrar's new lease): "
            + "; ".join(
                f"{name} {s(v['key_back_s'])} / {s(v['lease_renewed_s'])}"
                for name, v in m["reregistered"].items()
            )
            + f"; all keys back at {s(m['all_keys_back_s'])}",
            "- channel set missing a running server: "
            + windows(m["channel_missing_running_server"]),
            f"- channel set empty: {windows(m['channel_empty'])}",
            "- READY set missing a running server: "
            + windows(m["channel_ready_missing_running_server"]),
            "- fewest endpoints in the channel after the fault: "
            + str(m["channel_min_endpoints_after_fault"]),
            "- longest time without a successful call: "
            + f"{window(m['zero_success_longest_after_fault'])} after the fault, "
            + f"{window(m['zero_success_longest'])} over the whole run",
            f"- calls: {m['calls_total']} total, {m['ok_after_fault']} OK after the fault; "
            f"failed after the fault: {counts(m['failures_after_fault'])}; "
            f"before: {counts(m['failures_before_fault'])}",
        ]
    else:
        out += [
            f"- SIGKILL p3 at {s(m['killed_at_s'])}, n4 started at {s(m['new_started_at_s'])}, "
            f"etcd resumed at {s(m['resume_s'])}",
            f"- longest without a successful call: during the hang "
            f"{window(m['zero_success_longest_during_hang'])}; after resume "
            f"{window(m['zero_success_longest_after_resume'])}",
            f"- channel endpoint sets seen during the hang: {', '.join(m['channel_during_hang'])}",
            "- after resume, channel set = live servers first at "
            f"{s(m['channel_equals_live_after_resume_s'])}, for good from "
            f"{s(m['channel_equals_live_stable_after_resume_s'])}; READY set = live servers first "
            f"at {s(m['ready_equals_live_after_resume_s'])}, for good from "
            f"{s(m['ready_equals_live_stable_after_resume_s'])}",
            "- new server n4 after resume: key in etcd "
            f"{s(m['new_server_key_after_resume_s'])}, in the channel "
            f"{s(m['new_server_in_channel_after_resume_s'])}, first call "
            f"{s(m['new_server_first_call_after_resume_s'])}",
            f"- killed p3 after resume: key gone {s(m['killed_key_gone_after_resume_s'])}, left "
            f"the channel {s(m['killed_left_channel_after_resume_s'])}",
            "- survivors' (s1, s2) keys missing in etcd after resume: "
            + windows(m["survivor_keys_missing_in_etcd_after_resume"]),
            "- channel set missing a survivor after resume: "
            + windows(m["channel_missing_survivor_after_resume"])
            + f"; channel set empty after resume: {windows(m['channel_empty_after_resume'])}",
            f"- calls: {m['calls_total']} total; OK during hang {m['ok_during_hang']}, after "
            f"resume {m['ok_after_resume']}; failed during hang: "
            f"{counts(m['failures_during_hang'])}; after resume: "
            f"{counts(m['failures_after_resume'])}",
            f"- rpcfw warnings during the hang: {_hang_warnings(run)}; after resume: "
            + counts(m["warnings_after_resume"]),
        ]
    out += ["", "### Timeline (seconds from the fault)", "", *timeline(run)]
    out += ["", "### rpcfw warnings (grouped; all rpcfw.* loggers)", "", *logs(run)]
    out += ["", "### Calls per second", "", *per_second(run), ""]
    return out


def _code(code: Mapping[str, Any]) -> str:
    text = f"Code under test: rpcfw from `{code.get('rpcfw_dir')}` (sources sha256 "
    text += f"`{code.get('rpcfw_sources_sha256')}`)"
    if "git_head" in code:
        changes = code.get("local_changes") or []
        text += f", git HEAD `{code['git_head']}`"
        text += f" with {len(changes)} changed file(s) under rpcfw/ and tests/" if changes else ""
    if code.get("note"):
        text += f". {code['note']}"
    return text + "."


def render(data: Mapping[str, Any]) -> str:
    cfg = data["config"]
    runs = data["runs"]
    out = [
        f"# Discovery faults: `{data['label']}` ({data['date']})",
        "",
        f"`{data['command']}`",
        "",
        _code(data.get("code", {})),
        "",
        f"One etcd 3.4, three Echo servers registered with leases (TTL {cfg['ttl']} s in "
        "process; the hang scenario's killed server p3 is a subprocess with a 2 s TTL), one "
        f"`etcd://` channel with round_robin, {cfg['workers']} workers in a closed loop, "
        f"{cfg['call_timeout']} s per call, {cfg['fail_pause']} s pause after a failure. "
        f"{cfg['steady']} s of load before the fault, {cfg['after']} s after it (hang: after "
        f"the resume; the hang lasts {cfg['hang']} s). The channel's subchannels are sampled "
        f"every {cfg['channel_interval'] * 1000:.0f} ms, etcd's keys every "
        f"{cfg['key_interval'] * 1000:.0f} ms. Times are seconds from the fault; a window's "
        "length is measured between samples.",
        "",
    ]
    wipes = [r for r in runs if r["scenario"] == "wipe"]
    hangs = [r for r in runs if r["scenario"] == "hang"]
    if wipes:
        out += ["## Summary: wipe (etcd restarted with an empty data dir at 0)", ""]
        out += [*wipe_summary(wipes), ""]
    if hangs:
        out += [f"## Summary: hang (etcd SIGSTOPped at 0 for {cfg['hang']} s)", ""]
        out += [*hang_summary(hangs), ""]
    for run in runs:
        out += run_details(run)
    return "\n".join(out).rstrip() + "\n"
