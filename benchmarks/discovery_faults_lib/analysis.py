"""Pure analysis of a recording: every time relative to the fault (seconds, fault = 0)."""

from __future__ import annotations

import bisect
import collections
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .record import WATCHED_LOGGERS, ChannelSample, KeySample, Recording

__all__ = [
    "Timeline",
    "Window",
    "analyze_hang",
    "analyze_wipe",
    "grouped_logs",
    "warnings_between",
]


@dataclass(frozen=True, slots=True)
class Window:
    """``start`` to ``end``; ``open``: still going on at the last sample."""

    start: float
    end: float
    open: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration, 3),
            "from_s": round(self.start, 3),
            "to_s": round(self.end, 3),
            "open_at_end": self.open,
        }


def flag_windows(samples: Iterable[tuple[float, bool]]) -> list[Window]:
    """Windows where the flag holds: each opens at the first sample with the flag and closes
    at the first later sample without it (or at the last sample, open)."""
    windows: list[Window] = []
    opened: float | None = None
    last = None
    for t, flag in samples:
        last = t
        if flag and opened is None:
            opened = t
        elif not flag and opened is not None:
            windows.append(Window(opened, t))
            opened = None
    if opened is not None and last is not None:
        windows.append(Window(opened, last, open=True))
    return windows


def longest(windows: Sequence[Window]) -> Window | None:
    return max(windows, key=lambda w: w.duration, default=None)


def window_summary(windows: Sequence[Window]) -> dict[str, Any]:
    top = longest(windows)
    return {
        "longest": top.as_dict() if top else None,
        "count": len(windows),
        "total_s": round(sum(w.duration for w in windows), 3),
    }


def longest_gap(times: Sequence[float], lo: float, hi: float) -> Window:
    """The longest stretch of [lo, hi] without any of the (sorted) ``times``."""
    points = [lo, *times[bisect.bisect_right(times, lo) : bisect.bisect_left(times, hi)], hi]
    best = Window(lo, lo)
    for a, b in itertools.pairwise(points):
        if b - a > best.duration:
            best = Window(a, b)
    return best


def r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class Timeline:
    """A recording made relative to the fault, with the port <-> server id map."""

    def __init__(
        self, rec: Recording, fault: float, ports: Mapping[str, int], start: float, end: float
    ) -> None:
        self.fault = fault
        self.ids = {port: name for name, port in ports.items()}
        self.ports = dict(ports)
        self.start = start - fault  # load start (negative)
        self.end = end - fault  # load end
        calls = sorted(rec.calls, key=lambda c: c.end)
        self.calls = [
            (c.start - fault, c.end - fault, c.status, c.server)
            for c in calls
            if c.end - fault <= self.end
        ]
        self.ok_times = [c[1] for c in self.calls if c[2] == "OK"]
        self.channel = [
            ChannelSample(s.t - fault, s.ports, s.ready, s.state, s.leases) for s in rec.channel
        ]
        self.keys = [KeySample(k.t - fault, k.latency, k.ports, k.error) for k in rec.keys]
        self.events = [(t - fault, what) for t, what in rec.events]
        self.liveness = sorted((t - fault, name, up) for t, name, up in rec.liveness)

    # -- helpers ------------------------------------------------------------------------------
    def name(self, port: int) -> str:
        return self.ids.get(port, str(port))

    def names(self, ports: Iterable[int] | None) -> str:
        if ports is None:
            return "(poll failed)"
        return "{" + ",".join(sorted(self.name(p) for p in ports)) + "}"

    def live_ports(self, t: float) -> set[int]:
        state: dict[str, bool] = {}
        for when, name, up in self.liveness:
            if when > t:
                break
            state[name] = up
        return {self.ports[name] for name, up in state.items() if up and name in self.ports}

    def event_time(self, prefix: str) -> float | None:
        return next((t for t, what in self.events if what.startswith(prefix)), None)

    def channel_windows(self, flag: Callable[[ChannelSample], bool]) -> list[Window]:
        return flag_windows((s.t, flag(s)) for s in self.channel)

    def first_channel(self, flag: Callable[[ChannelSample], bool], after: float) -> float | None:
        return next((s.t for s in self.channel if s.t >= after and flag(s)), None)

    def stable_since(self, flag: Callable[[ChannelSample], bool], after: float) -> float | None:
        """Start of the last run of samples (after ``after``) with the flag, if it lasts to the
        end of the recording."""
        since = None
        for s in self.channel:
            if s.t < after:
                continue
            since = (s.t if since is None else since) if flag(s) else None
        return since

    def first_key(self, flag: Callable[[tuple[int, ...]], bool], after: float) -> float | None:
        """First successful poll that started at or after ``after`` whose keys satisfy flag."""
        for k in self.keys:
            if k.t - k.latency >= after and k.ports is not None and flag(k.ports):
                return k.t
        return None

    def failures(self, lo: float, hi: float) -> dict[str, int]:
        counter = collections.Counter(c[2] for c in self.calls if lo <= c[1] < hi and c[2] != "OK")
        return dict(counter.most_common())

    def ok_count(self, lo: float, hi: float) -> int:
        return sum(1 for c in self.calls if lo <= c[1] < hi and c[2] == "OK")

    def first_call_from(self, server: str, after: float) -> float | None:
        return next(
            (c[1] for c in self.calls if c[3] == server and c[2] == "OK" and c[1] >= after), None
        )

    # -- tables ---------------------------------------------------------------------------------
    def per_second(self) -> list[dict[str, Any]]:
        """Per second of the run: OK calls per server and failures by status."""
        first, last = math.floor(self.start + 0.05), math.ceil(self.end - 0.05)
        rows: dict[int, dict[str, Any]] = {
            s: {"second": s, "ok": collections.Counter(), "failed": collections.Counter()}
            for s in range(first, last)
        }
        for _, end, status, server in self.calls:
            row = rows.get(math.floor(end))
            if row is None:
                continue
            if status == "OK":
                row["ok"][server] += 1
            else:
                row["failed"][status] += 1
        return [
            {"second": r["second"], "ok": dict(r["ok"]), "failed": dict(r["failed"])}
            for r in rows.values()
        ]

    def channel_transitions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        previous: tuple[Any, ...] | None = None
        for s in self.channel:
            current = (s.ports, s.ready, s.state)
            if current != previous:
                out.append(
                    {
                        "t": r3(s.t),
                        "endpoints": self.names(s.ports),
                        "ready": self.names(s.ready),
                        "state": s.state,
                    }
                )
                previous = current
        return out

    def key_transitions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        previous: str | None = None
        for k in self.keys:
            current = self.names(k.ports) if k.ports is not None else f"error {k.error}"
            if current != previous:
                out.append({"t": r3(k.t), "keys": current, "poll_latency_s": r3(k.latency)})
                previous = current
        return out

    def lease_transitions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        previous: dict[str, int | None] = {}
        for s in self.channel:
            for name, lease in s.leases.items():
                if name not in previous or previous[name] != lease:
                    out.append(
                        {
                            "t": r3(s.t),
                            "server": name,
                            "lease": None if lease is None else hex(lease),
                        }
                    )
                    previous[name] = lease
        return out


def grouped_logs(entries: Iterable[Any], fault: float) -> list[dict[str, Any]]:
    """rpcfw warnings grouped by (logger, level, template): count, first and last time, the
    first message in full."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in entries:
        key = (e.logger, e.level, e.template)
        t = round(e.t - fault, 3)
        group = groups.get(key)
        if group is None:
            groups[key] = {
                "logger": e.logger,
                "level": e.level,
                "watched": e.logger in WATCHED_LOGGERS,
                "count": 1,
                "first_s": t,
                "last_s": t,
                "times_s": [t],
                "message": e.message,
            }
        else:
            group["count"] += 1
            group["last_s"] = t
            if len(group["times_s"]) < 50:
                group["times_s"].append(t)
    return sorted(groups.values(), key=lambda g: g["first_s"])


def warnings_between(entries: Iterable[Any], fault: float, lo: float, hi: float) -> dict[str, int]:
    """rpcfw warnings logged in [lo, hi) per logger (the four watched loggers always listed)."""
    total = dict.fromkeys(WATCHED_LOGGERS, 0)
    for e in entries:
        if lo <= e.t - fault < hi:
            total[e.logger] = total.get(e.logger, 0) + 1
    return total


def _has(port: int) -> Callable[[tuple[int, ...]], bool]:
    return lambda ports: port in ports


def _common(tl: Timeline) -> dict[str, Any]:
    return {
        "calls_total": len(tl.calls),
        "calls_ok": tl.ok_count(tl.start, tl.end + 1),
        "failures_before_fault": tl.failures(tl.start, 0.0),
    }


def analyze_wipe(tl: Timeline, servers: Sequence[str]) -> dict[str, Any]:
    """etcd restarted with an empty data dir at t=0; every server stays up."""
    etcd_back = tl.event_time("etcd healthy")
    before = [s for s in tl.channel if s.t < 0]
    old_leases = before[-1].leases if before else {}
    reregistered: dict[str, dict[str, float | None]] = {}
    for name in servers:
        port = tl.ports[name]
        key_back = tl.first_key(_has(port), 0.0)
        lease_renewed = next(
            (
                s.t
                for s in tl.channel
                if s.t >= 0 and s.leases.get(name) not in (None, old_leases.get(name))
            ),
            None,
        )
        reregistered[name] = {"key_back_s": r3(key_back), "lease_renewed_s": r3(lease_renewed)}
    keys_back = [v["key_back_s"] for v in reregistered.values()]
    all_back = (
        None if any(k is None for k in keys_back) else max(k for k in keys_back if k is not None)
    )

    def missing(s: ChannelSample) -> bool:
        return not tl.live_ports(s.t) <= set(s.ports)

    def ready_missing(s: ChannelSample) -> bool:
        return not tl.live_ports(s.t) <= set(s.ready)

    after = [c for c in tl.channel if c.t >= 0]
    return {
        **_common(tl),
        "etcd_back_s": r3(etcd_back),
        "reregistered": reregistered,
        "all_keys_back_s": r3(all_back),
        "channel_missing_running_server": window_summary(tl.channel_windows(missing)),
        "channel_empty": window_summary(tl.channel_windows(lambda s: not s.ports)),
        "channel_ready_missing_running_server": window_summary(tl.channel_windows(ready_missing)),
        "channel_min_endpoints_after_fault": min((len(s.ports) for s in after), default=None),
        "zero_success_longest": longest_gap(tl.ok_times, tl.start, tl.end).as_dict(),
        "zero_success_longest_after_fault": longest_gap(tl.ok_times, 0.0, tl.end).as_dict(),
        "failures_after_fault": tl.failures(0.0, tl.end + 1),
        "ok_after_fault": tl.ok_count(0.0, tl.end + 1),
    }


def analyze_hang(
    tl: Timeline, originals: Sequence[str], killed: str, new: str, resume: float
) -> dict[str, Any]:
    """etcd SIGSTOPped at t=0 and SIGCONTed at ``resume``; ``killed`` SIGKILLed and ``new``
    started during the hang."""

    def exact(s: ChannelSample) -> bool:
        return set(s.ports) == tl.live_ports(s.t)

    def exact_ready(s: ChannelSample) -> bool:
        return set(s.ready) == tl.live_ports(s.t)

    survivors = [tl.ports[n] for n in originals if n != killed]

    def survivor_missing(s: ChannelSample) -> bool:
        return not set(survivors) <= set(s.ports)

    after_resume = [s for s in tl.channel if s.t >= resume]
    key_windows = flag_windows(
        (k.t, not set(survivors) <= set(k.ports))
        for k in tl.keys
        if k.t >= resume and k.ports is not None
    )

    def since_resume(t: float | None) -> float | None:
        return r3(None if t is None else t - resume)

    killed_port, new_port = tl.ports[killed], tl.ports[new]
    return {
        **_common(tl),
        "resume_s": r3(resume),
        "killed_at_s": r3(tl.event_time(f"SIGKILL {killed}")),
        "new_started_at_s": r3(tl.event_time(f"started {new}")),
        "zero_success_longest_during_hang": longest_gap(tl.ok_times, 0.0, resume).as_dict(),
        "zero_success_longest_after_resume": longest_gap(tl.ok_times, resume, tl.end).as_dict(),
        "channel_equals_live_after_resume_s": since_resume(tl.first_channel(exact, resume)),
        "channel_equals_live_stable_after_resume_s": since_resume(tl.stable_since(exact, resume)),
        "ready_equals_live_after_resume_s": since_resume(tl.first_channel(exact_ready, resume)),
        "ready_equals_live_stable_after_resume_s": since_resume(
            tl.stable_since(exact_ready, resume)
        ),
        "new_server_first_call_after_resume_s": since_resume(tl.first_call_from(new, 0.0)),
        "new_server_key_after_resume_s": since_resume(
            tl.first_key(lambda ports: new_port in ports, resume)
        ),
        "new_server_in_channel_after_resume_s": since_resume(
            tl.first_channel(lambda s: new_port in s.ports, 0.0)
        ),
        "killed_key_gone_after_resume_s": since_resume(
            tl.first_key(lambda ports: killed_port not in ports, resume)
        ),
        "killed_left_channel_after_resume_s": since_resume(
            tl.first_channel(lambda s: killed_port not in s.ports, 0.0)
        ),
        "channel_during_hang": sorted({tl.names(s.ports) for s in tl.channel if 0 <= s.t < resume}),
        "channel_missing_survivor_after_resume": window_summary(
            flag_windows((s.t, survivor_missing(s)) for s in after_resume)
        ),
        "channel_empty_after_resume": window_summary(
            flag_windows((s.t, not s.ports) for s in after_resume)
        ),
        "survivor_keys_missing_in_etcd_after_resume": window_summary(key_windows),
        "failures_during_hang": tl.failures(0.0, resume),
        "failures_after_resume": tl.failures(resume, tl.end + 1),
        "ok_during_hang": tl.ok_count(0.0, resume),
        "ok_after_resume": tl.ok_count(resume, tl.end + 1),
    }
