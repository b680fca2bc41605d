"""``rpcfw bench``: a ghz-like load generator for any rpcfw/gRPC target.

Pure pieces (unit-tested): :mod:`.histogram` (latency recording and percentiles),
:mod:`.report` (results as table, JSON or CSV), :mod:`.html_report` (HTML page and Markdown),
:mod:`.svg_plot` (inline SVG charts), :mod:`.schedule` (open-loop send times, duration
parsing), :class:`.progress.ProgressMeter` (what the progress line says). IO: :mod:`.runner`
drives rpcfw Channels; :class:`.progress.ProgressLine` draws the line on a terminal.
"""

from __future__ import annotations

from .histogram import LatencyHistogram
from .report import BenchResult, render
from .schedule import OpenLoopSchedule, parse_duration

__all__ = ["BenchResult", "LatencyHistogram", "OpenLoopSchedule", "parse_duration", "render"]
