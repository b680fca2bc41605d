"""``rpcfw bench -o FILE``: the report in the format FILE's extension names (.json, .csv,
.html, .md, .txt), the HTML page with its plot embedded (a base64 PNG when matplotlib is
installed, else inline SVG)."""

from __future__ import annotations

import base64
import importlib
import io
from pathlib import Path
from typing import Any

from ..bench.html_report import to_html, to_markdown
from ..bench.report import BenchResult, render

__all__ = ["OUTPUT_FORMATS", "output_format", "plot_png", "report_text"]

OUTPUT_FORMATS = {
    ".json": "json",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".txt": "table",
}


def output_format(path: Path) -> str | None:
    """The format FILE's extension names, or None."""
    return OUTPUT_FORMATS.get(path.suffix.lower())


def _matplotlib() -> Any | None:
    try:
        return importlib.import_module("matplotlib")
    except ImportError:
        return None


def plot_png(result: BenchResult) -> bytes:
    """Latency histogram and OK calls per second as a PNG (needs matplotlib)."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    counts = [c for _, c in result.histogram]
    left.bar(range(len(counts)), counts)
    left.set_xticks(range(len(counts)), [f"{u:.2f}" for u, _ in result.histogram], rotation=45)
    left.set_xlabel("latency up to (ms)")
    left.set_ylabel("calls")
    left.set_title(f"{result.method} latency")
    right.plot(range(len(result.ok_per_second)), result.ok_per_second, marker="o")
    right.set_xlabel("second")
    right.set_ylabel("OK calls")
    right.set_title("throughput")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    pyplot.close(figure)
    return out.getvalue()


def report_text(result: BenchResult, fmt: str) -> str:
    """The report in ``fmt`` (json, csv, table, md, html)."""
    if fmt == "md":
        return to_markdown(result)
    if fmt == "html":
        image = None
        if _matplotlib() is not None and result.histogram:
            data = base64.b64encode(plot_png(result)).decode("ascii")
            image = f'<img alt="latency and throughput" src="data:image/png;base64,{data}">'
        return to_html(result, image)
    return render(result, fmt)
