"""``rpcfw bench`` as a ghz user runs it: schema from reflection, -H/-m metadata, TLS,
--warmup, -o FILE in the format its extension names, Ctrl-C printing the partial report."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rpcfw
from rpcfw.interceptors import TokenAuthServer

from ..conftest import ROOT, load_echo
from ..echo_service import make_echo_service
from .conftest import LIVENESS, ThreadServer, TlsFiles, rpcfw_command, run, serve_in_thread

UNARY = "echo.v1.Echo/Unary"
TOKEN = "Bearer s3cret"


class CountingEcho:
    """Echo that counts its unary calls and says when the second one since ``second_call``
    was cleared came (with one worker: the first one's reply was recorded by then)."""

    def __new__(cls, echo: Any) -> Any:
        base: Any = type(make_echo_service(echo, "bench"))

        class Service(base):  # type: ignore[misc,valid-type]
            second_call = threading.Event()
            since_clear = 0

            async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
                self.since_clear += 1
                if self.since_clear >= 2:
                    self.second_call.set()
                return await super().unary(request, context)

        return Service()


@pytest.fixture(scope="module")
def service(generated_root: Path) -> Any:
    return CountingEcho(load_echo(generated_root, "protobuf"))


@pytest.fixture(scope="module")
def auth_server(service: Any) -> Iterator[ThreadServer]:
    """Echo with reflection that refuses calls without ``authorization: Bearer s3cret``."""
    auth = TokenAuthServer({"s3cret"}, exempt=("/grpc.health.v1.Health/", "/grpc.reflection."))
    yield from serve_in_thread([service], reflection=True, interceptors=[auth])


def bench_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    result = run(env, "bench", *args, "-f", "json")
    assert result.stdout, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


def test_schema_from_reflection_with_header_and_json_metadata(
    cli_env: dict[str, str], auth_server: ThreadServer
) -> None:
    load = [auth_server.address, UNARY, "-n", "20", "-c", "2"]
    code, data = bench_json(cli_env, *load, "-H", f"authorization: {TOKEN}")
    assert (code, data["ok"], data["errors"]) == (0, 20, 0)
    code, data = bench_json(cli_env, *load, "-m", json.dumps({"authorization": TOKEN}))
    assert (code, data["ok"], data["errors"]) == (0, 20, 0)
    code, data = bench_json(cli_env, *load)  # no token: every call refused
    assert code == 1
    assert data["status_codes"] == {"OK": 0, "UNAUTHENTICATED": 20}


def test_warmup_calls_run_but_are_not_counted(
    cli_env: dict[str, str], auth_server: ThreadServer, service: Any
) -> None:
    before = service.calls
    code, data = bench_json(
        cli_env, auth_server.address, UNARY, "-H", f"authorization: {TOKEN}",
        "-n", "30", "-c", "1", "--warmup", "10",
    )  # fmt: skip
    assert code == 0
    assert (data["count"], data["ok"], data["warmup_calls"]) == (30, 30, 10)
    assert sum(b["count"] for b in data["histogram"]) == 30
    assert service.calls - before == 40


def test_warmup_duration_is_accepted_and_bad_warmup_refused(
    cli_env: dict[str, str], auth_server: ThreadServer
) -> None:
    args = [auth_server.address, UNARY, "-H", f"authorization: {TOKEN}", "-n", "5", "-c", "1"]
    code, data = bench_json(cli_env, *args, "--warmup", "100ms")
    assert (code, data["count"]) == (0, 5)
    bad = run(cli_env, "bench", *args, "--warmup", "soon")
    assert bad.returncode == 2 and "--warmup" in bad.stderr


@pytest.mark.parametrize("suffix", [".json", ".csv", ".md", ".html", ".txt"])
def test_output_file_format_follows_the_extension(
    cli_env: dict[str, str], auth_server: ThreadServer, tmp_path: Path, suffix: str
) -> None:
    report = tmp_path / f"report{suffix}"
    result = run(
        cli_env, "bench", auth_server.address, UNARY, "-H", f"authorization: {TOKEN}",
        "-n", "20", "-c", "2", "-o", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Summary:" in result.stdout  # stdout still gets the table
    text = report.read_text()
    if suffix == ".json":
        assert json.loads(text)["ok"] == 20
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["ok"] == "20"
    elif suffix == ".md":
        assert text.startswith("# rpcfw bench: echo.v1.Echo/Unary")
        assert "| Calls | 20 (20 OK, 0 errors) |" in text
    elif suffix == ".html":
        assert text.startswith("<!DOCTYPE html>")
        assert "20 (20 OK, 0 errors)" in text
        assert "<svg" in text or "data:image/png;base64," in text  # the plot, embedded
        assert 'src="http' not in text and "<script" not in text
    else:
        assert text.startswith("Summary:")


def test_output_file_with_an_unknown_extension_is_refused(
    cli_env: dict[str, str], auth_server: ThreadServer, tmp_path: Path
) -> None:
    result = run(cli_env, "bench", auth_server.address, UNARY, "-o", str(tmp_path / "r.xlsx"))
    assert result.returncode == 2
    assert ".json" in result.stderr and ".html" in result.stderr


def test_bench_over_tls(
    cli_env: dict[str, str], tls_server: ThreadServer, tls_files: TlsFiles
) -> None:
    code, data = bench_json(
        cli_env, tls_server.address, UNARY, "-n", "10", "-c", "2", "--cacert", str(tls_files.ca)
    )
    assert (code, data["ok"]) == (0, 10)


def test_ctrl_c_prints_the_partial_report_and_exits_130(
    cli_env: dict[str, str], auth_server: ThreadServer, service: Any
) -> None:
    service.since_clear = 0
    service.second_call.clear()
    with subprocess.Popen(
        [
            rpcfw_command(), "bench", auth_server.address, UNARY, "-H", f"authorization: {TOKEN}",
            "-z", "10m", "-c", "1", "-f", "json",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env, cwd=ROOT,
    ) as bench:  # fmt: skip
        assert service.second_call.wait(LIVENESS)  # under way, one call measured
        bench.send_signal(signal.SIGINT)
        stdout, stderr = bench.communicate(timeout=LIVENESS)
    assert bench.returncode == 130, stderr
    data = json.loads(stdout)
    assert data["stopped_early"].startswith("interrupted")
    assert data["ok"] > 0
    assert "Traceback" not in stderr
