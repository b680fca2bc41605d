"""A benchmark's result and its renderings: a text table, JSON, or CSV (header + one row)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FORMATS", "PERCENTILES", "BenchResult", "render", "to_csv", "to_dict", "to_table"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
FORMATS = ("table", "json", "csv")


@dataclass(slots=True)
class BenchResult:
    """What one run measured. Latencies in milliseconds, of calls that ended OK."""

    target: str
    method: str
    kind: str
    concurrency: int
    connections: int
    rate: float | None
    elapsed_s: float
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    messages_sent: int = 0
    messages_received: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    histogram: list[tuple[float, int]] = field(default_factory=list)
    histogram_text: str = ""
    first_error: str | None = None
    stopped_early: str | None = None
    ok_per_second: list[int] = field(default_factory=list)  # OK calls in each second
    warmup_calls: int = 0  # run before measuring, not counted

    @property
    def count(self) -> int:
        return self.ok + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def per_second(self, value: int) -> float:
        return value / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def calls_per_s(self) -> float:
        return self.per_second(self.count)


def to_dict(result: BenchResult) -> dict[str, Any]:
    """The result as plain JSON-ready data: the run's settings, counts, rates, latency percentiles
    and histogram, and errors by status."""
    return {
        "target": result.target,
        "method": result.method,
        "kind": result.kind,
        "concurrency": result.concurrency,
        "connections": result.connections,
        "rate": result.rate,
        "elapsed_s": round(result.elapsed_s, 6),
        "count": result.count,
        "ok": result.ok,
        "errors": result.error_count,
        "status_codes": {"OK": result.ok, **dict(sorted(result.errors.items()))},
        "calls_per_s": round(result.calls_per_s, 3),
        "messages_sent": result.messages_sent,
        "messages_received": result.messages_received,
        "sent_per_s": round(result.per_second(result.messages_sent), 3),
        "received_per_s": round(result.per_second(result.messages_received), 3),
        "latency_ms": {k: round(v, 6) for k, v in result.latency_ms.items()},
        "histogram": [{"upper_ms": round(u, 6), "count": c} for u, c in result.histogram],
        "first_error": result.first_error,
        "stopped_early": result.stopped_early,
        "warmup_calls": result.warmup_calls,
    }


_CSV_FIELDS = (
    "target",
    "method",
    "kind",
    "concurrency",
    "connections",
    "rate",
    "elapsed_s",
    "count",
    "ok",
    "errors",
    "calls_per_s",
    "messages_sent",
    "messages_received",
    "sent_per_s",
    "received_per_s",
)


def to_csv(result: BenchResult) -> str:
    """A header line and one row (rows of several runs concatenate, minus the header)."""
    data = to_dict(result)
    latency = data["latency_ms"]
    header = [*_CSV_FIELDS, *(f"{k}_ms" for k in latency), "errors_by_status"]
    row: list[Any] = [("" if data[k] is None else data[k]) for k in _CSV_FIELDS]
    row.extend(latency.values())
    row.append(";".join(f"{k}={v}" for k, v in sorted(result.errors.items())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerow(row)
    return out.getvalue()


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def to_table(result: BenchResult) -> str:
    """The result as a human-readable text table: load, calls, throughput, latency percentiles, a
    histogram and errors by status."""
    rate = "closed loop" if result.rate is None else f"open loop, {result.rate:g} calls/s"
    rows = [
        ("Target", result.target),
        ("Method", f"{result.method} ({result.kind})"),
        (
            "Load",
            f"{_n(result.concurrency, 'worker')} over "
            f"{_n(result.connections, 'connection')}, {rate}",
        ),
        ("Elapsed", f"{result.elapsed_s:.3f} s"),
        ("Calls", f"{result.count} ({result.ok} OK, {result.error_count} errors)"),
        ("Calls/s", f"{result.calls_per_s:,.1f}"),
    ]
    if result.kind != "unary":
        rows.append(
            (
                "Messages/s",
                f"{result.per_second(result.messages_sent):,.1f} sent, "
                f"{result.per_second(result.messages_received):,.1f} received "
                f"({result.messages_sent} / {result.messages_received})",
            )
        )
    if result.warmup_calls:
        rows.append(("Warm-up", f"{result.warmup_calls} calls not measured"))
    if result.stopped_early:
        rows.append(("Stopped early", result.stopped_early))
    width = max(len(k) for k, _ in rows)
    lines = ["Summary:"]
    lines += [f"  {k + ':':<{width + 1}} {v}" for k, v in rows]
    if result.latency_ms:
        lines += ["", "Latency (calls that ended OK):"]
        keys = list(result.latency_ms)
        key_width = max(len(k) for k in keys)
        lines += [f"  {k:<{key_width}}  {_ms(result.latency_ms[k]):>14}" for k in keys]
    if result.histogram_text:
        lines += ["", "Latency histogram (ms):", result.histogram_text]
    lines += ["", "Status codes:"]
    codes = {"OK": result.ok, **dict(sorted(result.errors.items()))}
    code_width = max(len(k) for k in codes)
    lines += [f"  {k:<{code_width}}  {v}" for k, v in codes.items()]
    if result.first_error:
        lines += ["", f"First error: {result.first_error}"]
    return "\n".join(lines) + "\n"


def render(result: BenchResult, fmt: str) -> str:
    """The result in ``fmt``: ``json``, ``csv`` or ``table`` (ValueError for any other)."""
    if fmt == "json":
        return json.dumps(to_dict(result), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(result)
    if fmt == "table":
        return to_table(result)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
