"""``rpcfw bench`` end to end: the CLI (in process) against a real Echo server in a thread."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rpcfw
from rpcfw.cli import app
from rpcfw.cli.bench_command import (
    DEFAULT_DURATION,
    EXIT_BAD_DATA,
    EXIT_BAD_METHOD,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

from ..conftest import ROOT, load_echo
from ..echo_service import make_echo_service

PROTO = ["--proto", str(ROOT / "proto" / "echo" / "v1" / "echo.proto"), "-I", str(ROOT / "proto")]
MODULE = ["--module", "gen_protobuf.echo.v1.echo_rpcfw"]


@pytest.fixture(scope="module")
def server_address(generated_root: Path) -> Iterator[str]:
    """An Echo server on its own event loop in a thread (the CLI runs asyncio.run itself)."""
    mod = load_echo(generated_root, "protobuf")
    loop = asyncio.new_event_loop()
    ready: list[rpcfw.Server] = []
    started = threading.Event()

    async def start() -> None:
        server = rpcfw.Server([make_echo_service(mod, "bench")])
        await server.start("127.0.0.1", 0)
        ready.append(server)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    assert started.wait(10)
    yield ready[0].address
    asyncio.run_coroutine_threadsafe(ready[0].stop(grace=1), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def bench(*args: str) -> Any:
    return CliRunner().invoke(app, ["bench", *args])


def bench_json(*args: str) -> dict[str, Any]:
    result = bench(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_unary_total_json(server_address: str) -> None:
    data = bench_json(
        server_address, "echo.v1.Echo/Unary", *PROTO, "-d", '{"message": "hi"}',
        "--total", "200", "-c", "8", "--connections", "2",
    )  # fmt: skip
    assert data["count"] == data["ok"] == 200
    assert data["errors"] == 0
    assert data["status_codes"] == {"OK": 200}
    assert data["calls_per_s"] > 0
    assert data["kind"] == "unary"
    latency = data["latency_ms"]
    for key in ("min", "mean", "p50", "p90", "p99", "p99.9", "max"):
        assert latency[key] > 0
    assert latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert sum(b["count"] for b in data["histogram"]) == 200


def test_table_output_and_leading_slash(server_address: str) -> None:
    result = bench(server_address, "/echo.v1.Echo/Unary", *MODULE, "-n", "50", "-c", "2")
    assert result.exit_code == 0, result.output
    assert "50 (50 OK, 0 errors)" in result.stdout
    assert "p99.9" in result.stdout
    assert "Latency histogram" in result.stdout


def test_server_stream(server_address: str) -> None:
    data = bench_json(
        server_address, "echo.v1.Echo/ServerStream", *MODULE,
        "-d", '{"message": "x", "count": 4}', "-n", "40", "-c", "4",
    )  # fmt: skip
    assert (data["ok"], data["errors"], data["kind"]) == (40, 0, "server-stream")
    assert data["messages_sent"] == 40
    assert data["messages_received"] == 160
    assert data["received_per_s"] > 0


@pytest.mark.parametrize(("method", "kind"), [("ClientStream", "client-stream"), ("Bidi", "bidi")])
def test_client_streaming_kinds(server_address: str, method: str, kind: str) -> None:
    data = bench_json(
        server_address, f"echo.v1.Echo/{method}", *MODULE, "-d", '{"message": "m"}',
        "-n", "30", "-c", "3", "--stream-messages", "5",
    )  # fmt: skip
    assert (data["ok"], data["errors"], data["kind"]) == (30, 0, kind)
    assert data["messages_sent"] == 150
    assert data["messages_received"] == (30 if kind == "client-stream" else 150)


def test_duration_bound_closed_loop_csv(server_address: str) -> None:
    result = bench(server_address, "echo.v1.Echo/Unary", *MODULE, "-z", "300ms", "-f", "csv")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.startswith("target,method,kind,")
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert int(values["count"]) > 0 and values["errors"] == "0"
    # bounded by -z, not by a count: the workers stop only once 300 ms have passed since the
    # run's start (elapsed counts from the first call, one loop step later: the 50 ms of slack);
    # the upper bound is a liveness bound only, far above 300 ms and far below the 10 s run that
    # an ignored -z would give
    assert 0.25 < float(values["elapsed_s"]) < DEFAULT_DURATION / 2


def test_open_loop_rate(server_address: str) -> None:
    data = bench_json(
        server_address, "echo.v1.Echo/Unary", *MODULE, "--rate", "200", "--duration", "1s",
        "-c", "10",
    )  # fmt: skip
    assert data["rate"] == 200
    # the schedule hands out exactly rate x duration slots (due at 0, 5, ..., 995 ms), and every
    # call that was due ran to its end
    assert (data["count"], data["ok"], data["errors"]) == (200, 200, 0)
    # paced, not sent at once: the last call was not due before 995 ms after the first (the run's
    # own loop clock, which measures elapsed_s), so the rate cannot exceed the one asked for
    assert data["elapsed_s"] >= 0.99
    assert data["calls_per_s"] <= 200 / 0.99


def test_calls_failing_with_a_status_are_counted_by_name(server_address: str) -> None:
    result = bench(
        server_address, "echo.v1.Echo/Unary", *MODULE, "-d", '{"message": "abort:9:no"}',
        "-n", "20", "-c", "2", "-f", "json",
    )  # fmt: skip
    assert result.exit_code == 1  # every call failed
    data = json.loads(result.stdout)
    assert data["status_codes"] == {"OK": 0, "FAILED_PRECONDITION": 20}
    assert data["first_error"] == "FAILED_PRECONDITION: no"


def test_unknown_method_lists_the_methods(server_address: str) -> None:
    result = bench(server_address, "echo.v1.Echo/Nope", *PROTO, "-n", "1")
    assert result.exit_code == EXIT_BAD_METHOD
    assert "echo.v1.Echo has no method 'Nope'" in result.stderr
    assert "Bidi, ClientStream, ServerStream, Unary" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_service_lists_the_services(server_address: str) -> None:
    result = bench(server_address, "echo.v1.Nope/Unary", *MODULE, "-n", "1")
    assert result.exit_code == EXIT_BAD_METHOD
    assert "unknown service 'echo.v1.Nope'; services: echo.v1.Echo" in result.stderr


@pytest.mark.parametrize(
    ("module", "data", "expected"),
    [
        ("gen_protobuf", '{"nope": 1}', 'no field named "nope"'),
        ("gen_protobuf", '{"count": "many"}', "count"),
        ("gen_betterproto2", '{"nope": 1}', "field 'nope'"),
        ("gen_betterproto2", '{"message": "x", "count": "many"}', "field 'count'"),
        ("gen_protobuf", "{not json", "not valid JSON"),
        ("gen_protobuf", "[1, 2]", "must be a JSON object"),
    ],
)
def test_request_data_that_does_not_fit(
    server_address: str, module: str, data: str, expected: str
) -> None:
    result = bench(
        server_address, "echo.v1.Echo/Unary", "--module", f"{module}.echo.v1.echo_rpcfw",
        "-d", data, "-n", "1",
    )  # fmt: skip
    assert result.exit_code == EXIT_BAD_DATA, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_target_fails_fast(generated_root: Path) -> None:
    # generated_root: --module needs gen_protobuf importable (not only after another test)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = bench(f"127.0.0.1:{port}", "echo.v1.Echo/Unary", *MODULE, "-z", "30s")
    # fails fast: EXIT_UNREACHABLE comes only from the early stop after the first failures (no
    # call succeeded), never from a run that lasted its 30 s
    assert result.exit_code == EXIT_UNREACHABLE
    assert f"target 127.0.0.1:{port} unreachable" in result.stderr
    assert "UNAVAILABLE" in result.stderr
    assert "failed calls)" in result.stderr  # "(stopped after N failed calls)"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-z", "10q"], "malformed duration '10q'"),
        (["--rate", "0"], "--rate must be a positive"),
        (["--balancer", "nope"], "unknown balancer 'nope'"),
        (["--format", "xml"], "unknown --format 'xml'"),
        (["-c", "2", "--connections", "3"], "exceeds --concurrency"),
    ],
)
def test_bad_options(server_address: str, args: list[str], expected: str) -> None:
    result = bench(server_address, "echo.v1.Echo/Unary", *MODULE, "-n", "1", *args)
    assert result.exit_code == EXIT_USAGE
    assert expected in result.stderr


def test_takes_proto_or_module_not_both(server_address: str) -> None:
    result = bench(server_address, "echo.v1.Echo/Unary", *PROTO, *MODULE, "-n", "1")
    assert result.exit_code == EXIT_USAGE
    assert "not both" in result.stderr


def test_without_proto_or_module_a_server_without_reflection_says_to_give_one(
    server_address: str,
) -> None:
    result = bench(server_address, "echo.v1.Echo/Unary", "-n", "1")
    assert result.exit_code == EXIT_BAD_METHOD
    assert "does not serve server reflection" in result.stderr and "--proto" in result.stderr


def test_plot_without_matplotlib_says_so(
    server_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # matplotlib is optional (the "plot" extra): made missing here whether or not it is installed,
    # so this test checks the same thing on every machine
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    result = bench(
        server_address, "echo.v1.Echo/Unary", *MODULE, "-n", "1",
        "--plot", str(tmp_path / "p.png"),
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "--plot needs matplotlib" in result.stderr
    assert not (tmp_path / "p.png").exists()


def test_plot_writes_a_png_and_the_html_report_embeds_it(
    server_address: str, tmp_path: Path
) -> None:
    """With matplotlib (in the dev extra): ``--plot`` writes a PNG, and the HTML report embeds
    the same kind of image as a base64 PNG (not the SVG it falls back to without matplotlib)."""
    png, html = tmp_path / "latency.png", tmp_path / "report.html"
    result = bench(
        server_address, "echo.v1.Echo/Unary", *MODULE, "-n", "20",
        "--plot", str(png), "-o", str(html),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = html.read_text()
    assert "data:image/png;base64," in page and "<svg" not in page


def test_malformed_method_is_a_usage_error(server_address: str) -> None:
    result = bench(server_address, "nonsense", *MODULE, "-n", "1")
    assert result.exit_code == EXIT_USAGE
    assert "malformed method 'nonsense': expected SERVICE/METHOD" in result.stderr
