"""A benchmark result as a self-contained HTML page (summary, latency percentiles, status codes,
the latency histogram and OK calls per second as an embedded plot) or as Markdown."""

from __future__ import annotations

import html

from .report import BenchResult, to_dict
from .svg_plot import bar_chart, line_chart

__all__ = ["to_html", "to_markdown"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
"""


def _rows(result: BenchResult) -> list[tuple[str, str]]:
    data = to_dict(result)
    rate = "closed loop" if result.rate is None else f"open loop, {result.rate:g} calls/s"
    rows = [
        ("Target", result.target),
        ("Method", f"{result.method} ({result.kind})"),
        ("Load", f"{result.concurrency} workers over {result.connections} connections, {rate}"),
        ("Elapsed", f"{result.elapsed_s:.3f} s"),
        ("Calls", f"{result.count} ({result.ok} OK, {result.error_count} errors)"),
        ("Calls/s", f"{data['calls_per_s']:,.1f}"),
    ]
    if result.warmup_calls:
        rows.append(("Warm-up", f"{result.warmup_calls} calls not measured"))
    if result.stopped_early:
        rows.append(("Stopped early", result.stopped_early))
    if result.first_error:
        rows.append(("First error", result.first_error))
    return rows


def _codes(result: BenchResult) -> dict[str, int]:
    return {"OK": result.ok, **dict(sorted(result.errors.items()))}


def to_markdown(result: BenchResult) -> str:
    """Summary, latency and status code tables in Markdown."""
    lines = [f"# rpcfw bench: {result.method}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _rows(result)]
    if result.latency_ms:
        lines += ["", "| latency | ms |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in result.latency_ms.items()]
    lines += ["", "| status | calls |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in _codes(result).items()]
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, str]], numeric: bool = False) -> str:
    cell = '<td class="n">' if numeric else "<td>"
    body = "".join(
        f"<tr><th>{html.escape(k)}</th>{cell}{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def to_html(result: BenchResult, plot: str | None = None) -> str:
    """A whole HTML page. ``plot``: an ``<img>`` (say, a base64 PNG from matplotlib) to embed;
    None draws the charts as inline SVG."""
    title = html.escape(f"rpcfw bench: {result.method}")
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
        _table(_rows(result)),
    ]
    if result.latency_ms:
        parts.append("<h2>Latency (calls that ended OK)</h2>")
        parts.append(_table([(k, f"{v:.3f} ms") for k, v in result.latency_ms.items()], True))
    if plot is not None:
        parts.append(f"<h2>Plots</h2><figure>{plot}</figure>")
    else:
        if result.histogram:
            labels = [f"{upper:.2f}" for upper, _ in result.histogram]
            counts = [count for _, count in result.histogram]
            chart = bar_chart(labels, counts, "latency up to (ms)", "calls")
            parts.append(f"<h2>Latency histogram</h2><figure>{chart}</figure>")
        if result.ok_per_second:
            chart = line_chart(result.ok_per_second, "second", "OK calls")
            parts.append(f"<h2>Throughput</h2><figure>{chart}</figure>")
    parts.append("<h2>Status codes</h2>")
    parts.append(_table([(k, str(v)) for k, v in _codes(result).items()], True))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
