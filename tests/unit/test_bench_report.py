from __future__ import annotations

import csv
import io
import json

import pytest

from rpcfw.bench.histogram import LatencyHistogram
from rpcfw.bench.report import BenchResult, render


def make_result(**changes: object) -> BenchResult:
    histogram = LatencyHistogram()
    for ms in (1, 2, 3, 4, 10):
        histogram.record(ms / 1000)
    fields: dict[str, object] = {
        "target": "127.0.0.1:50051",
        "method": "echo.v1.Echo/Unary",
        "kind": "unary",
        "concurrency": 4,
        "connections": 2,
        "rate": None,
        "elapsed_s": 2.0,
        "ok": 5,
        "errors": {"UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1},
        "messages_sent": 8,
        "messages_received": 5,
        "latency_ms": {
            "min": 1.0,
            "mean": 4.0,
            **histogram.percentiles_ms([50, 90, 99, 99.9]),
            "max": 10.0,
        },
        "histogram": [(b.upper_ns / 1e6, b.count) for b in histogram.text_buckets()],
        "histogram_text": histogram.render_text(),
        "first_error": "UNAVAILABLE: gone",
    }
    fields.update(changes)
    return BenchResult(**fields)  # type: ignore[arg-type]


def test_counts_and_rates() -> None:
    result = make_result()
    assert result.count == 8
    assert result.error_count == 3
    assert result.calls_per_s == 4.0


def test_json_parses_with_counts_percentiles_and_status_codes() -> None:
    data = json.loads(render(make_result(), "json"))
    assert data["count"] == 8
    assert data["ok"] == 5
    assert data["errors"] == 3
    assert data["calls_per_s"] == 4.0
    assert data["status_codes"] == {"OK": 5, "DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 2}
    assert set(data["latency_ms"]) == {"min", "mean", "p50", "p90", "p99", "p99.9", "max"}
    assert data["latency_ms"]["p50"] == pytest.approx(3.0, rel=0.01)
    assert sum(b["count"] for b in data["histogram"]) == 5


def test_csv_has_a_header_and_one_row() -> None:
    rows = list(csv.DictReader(io.StringIO(render(make_result(rate=100.0), "csv"))))
    assert len(rows) == 1
    row = rows[0]
    assert row["method"] == "echo.v1.Echo/Unary"
    assert row["count"] == "8"
    assert row["rate"] == "100.0"
    assert float(row["p99.9_ms"]) > 0
    assert row["errors_by_status"] == "DEADLINE_EXCEEDED=1;UNAVAILABLE=2"


def test_table_shows_summary_latency_and_errors_by_status() -> None:
    text = render(make_result(kind="bidi"), "table")
    assert "Calls:" in text and "8 (5 OK, 3 errors)" in text
    assert "Messages/s:" in text
    assert "p99.9" in text
    assert "UNAVAILABLE" in text and "DEADLINE_EXCEEDED" in text
    assert "First error: UNAVAILABLE: gone" in text
    assert "4 workers over 2 connections, closed loop" in text
    unary = render(make_result(errors={}, first_error=None, rate=50.0), "table")
    assert "Messages/s" not in unary
    assert "open loop, 50 calls/s" in unary


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(make_result(), "xml")
