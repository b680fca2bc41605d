"""The report of a matrix run: the machine it ran on (``machine_info``), the throughput, p99
and rpcfw-layers tables, the markdown report (``render_report``) and the chart of ratios
(``chart``, with matplotlib)."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from . import security
from .model import BASELINE, STREAM_BATCH

__all__ = [
    "LAYER_ROWS",
    "P99_TITLE",
    "chart",
    "layers_table",
    "machine_info",
    "p99_table",
    "render_report",
    "table",
]


def machine_info() -> dict[str, str]:
    from importlib import metadata

    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for dist in ("rpcfw", "grpclib", "grpcio", "protobuf", "betterproto2", "h2", "uvloop"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    try:
        from google.protobuf.internal import api_implementation

        versions.append(f"protobuf backend {api_implementation.Type()}")
    except ImportError:
        pass
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} (server pinned to core 0, client to core 1)",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "packages": ", ".join(versions),
    }


def _stats(runs: list[float]) -> tuple[float, float]:
    med = statistics.median(runs)
    return med, ((max(runs) - min(runs)) / med * 100 if med else 0.0)


def _ratio(data: dict[str, Any], loop: str, cell: str, label: str, base: str) -> float | None:
    slot = data["results"].get(loop, {}).get(cell, {})
    if not slot.get(label) or not slot.get(base):
        return None
    return float(statistics.median(slot[label]) / statistics.median(slot[base]))


def _baseline(data: dict[str, Any], label: str) -> str:
    """What a pair's ratio is against: grpc.aio + grpc.aio with the same transport option."""
    option = data.get("options", {}).get(label)
    return BASELINE + security.OPTIONS[option].suffix if option else BASELINE


def _not_run(data: dict[str, Any], label: str, cell: str) -> bool:
    return cell not in data.get("option_cells", {}).get(label, [cell])


def table(data: dict[str, Any], loop: str) -> str:
    cells = data["cells"]
    lines = [
        "| server + client | " + " | ".join(cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for label in data["pairs"]:
        row = []
        for cell in cells:
            runs = data["results"].get(loop, {}).get(cell, {}).get(label)
            if not runs:
                row.append("—" if _not_run(data, label, cell) else "failed")
                continue
            med, spread = _stats(runs)
            ratio = _ratio(data, loop, cell, label, _baseline(data, label))
            r = f" ({ratio:.2f}x)" if ratio is not None else ""
            row.append(f"{med:,.0f}/s ±{spread:.0f}%{r}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


P99_TITLE = (
    "p99 latency, unary cells (ms; median of runs, ratio vs grpc.aio: below 1.00x is better)"
)


def p99_table(data: dict[str, Any], loop: str) -> str:
    """One row per pair, one column per unary cell: median p99 (ms) and ratio vs grpc.aio."""
    by_cell = data.get("p99_ms", {}).get(loop, {})
    cells = [cell for cell in data["cells"] if cell.startswith("unary ")]
    if not cells:
        return ""
    lines = [
        "| server + client | " + " | ".join(cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for label in data["pairs"]:
        row = []
        for cell in cells:
            runs = by_cell.get(cell, {}).get(label)
            if not runs:
                row.append("—" if _not_run(data, label, cell) else "failed")
                continue
            med = statistics.median(runs)
            base = by_cell.get(cell, {}).get(_baseline(data, label))
            base_med = statistics.median(base) if base else 0.0
            r = f" ({med / base_med:.2f}x)" if base_med else ""
            row.append(f"{med:.2f} ms{r}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join([P99_TITLE, "", *lines])


LAYER_ROWS = (
    ("rpcfw + rpcfw vs grpclib + grpclib", "rpcfw + rpcfw (protobuf)"),
    ("rpcfw server (grpclib client) vs grpclib server", "rpcfw server + grpclib client"),
    ("rpcfw client (grpclib server) vs grpclib client", "grpclib server + rpcfw client"),
)


def layers_table(data: dict[str, Any], loop: str) -> str:
    cells = data["cells"]
    lines = ["| rpcfw's layers, same protobuf messages | " + " | ".join(cells) + " |"]
    lines.append("|---" * (len(cells) + 1) + "|")
    for title, label in LAYER_ROWS:
        if label not in data["pairs"]:
            continue
        row = []
        for cell in cells:
            ratio = _ratio(data, loop, cell, label, "grpclib + grpclib")
            row.append("—" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def render_report(data: dict[str, Any], command: str, chart: str | None) -> str:
    out = [
        f"# rpcfw peer benchmark, {data['date']} ({data['mode']} mode)",
        "",
        f"Command: `{command}`. Wall time {data['elapsed_s']:.0f} s.",
        "",
        "Server and client in separate processes pinned to separate cores, one connection. "
        f"{data['repeats']} repeats of {data['duration_s']:g} s per measurement, pairs "
        "interleaved per cell; each entry is the median, ± the spread (max - min over median), "
        "and in brackets the ratio against grpc.aio server + grpc.aio client measured in the "
        "same run under the same loop. Unary cells are calls/s; stream cells are messages/s "
        f"(one stream at a time, {STREAM_BATCH} messages a call, 0 B payloads). Messages are "
        "protobuf (upb) for every pair except the betterproto2 row. This is a shared, noisy "
        "2-core machine: compare ratios, not absolutes, and mind the spread.",
        *(["", note] if (note := security.report_note(data)) else []),
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in data["machine"].items()),
        "",
    ]
    for loop in data["loops"]:
        out += [f"## {loop} loop", "", table(data, loop), ""]
        if latency := p99_table(data, loop):
            out += [latency, ""]
        out += [layers_table(data, loop), ""]
        if shares := security.share_table(data, loop):
            out += [shares, ""]
        for cell, by_pair in data["errors"].get(loop, {}).items():
            for label, msgs in by_pair.items():
                out.append(f"- {label}, {cell}: {len(msgs)} failed run(s): `{msgs[0]}`")
        out.append("")
    if chart:
        out += [f"![ratios against grpc.aio]({chart})", ""]
    out += [f"- {note}" for note in data["notes"]]
    return "\n".join(out).rstrip() + "\n"


def chart(data: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        data["notes"].append("matplotlib is not installed (`pip install matplotlib`): no chart")
        return None
    loops, cells, pairs = data["loops"], data["cells"], data["pairs"]
    fig, axes = plt.subplots(
        len(loops), 1, figsize=(max(8, 1.3 * len(cells) + 3), 4.2 * len(loops)), squeeze=False
    )
    width = 0.8 / len(pairs)
    for ax, loop in zip(axes[:, 0], loops, strict=True):
        for i, label in enumerate(pairs):
            heights, lows, highs = [], [], []
            for cell in cells:
                slot = data["results"].get(loop, {}).get(cell, {})
                base = slot.get(_baseline(data, label))
                runs = slot.get(label)
                if not runs or not base:
                    heights.append(0.0)
                    lows.append(0.0)
                    highs.append(0.0)
                    continue
                b = statistics.median(base)
                med = statistics.median(runs) / b
                heights.append(med)
                lows.append(med - min(runs) / b)
                highs.append(max(runs) / b - med)
            xs = [x + (i - (len(pairs) - 1) / 2) * width for x in range(len(cells))]
            ax.bar(xs, heights, width, yerr=[lows, highs], capsize=2, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels(cells, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("ratio vs grpc.aio + grpc.aio")
        ax.set_title(f"{loop} loop (median, whiskers: min..max of runs)")
    axes[0, 0].legend(fontsize=7, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
