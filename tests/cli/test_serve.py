"""``rpcfw serve MODULE:ATTRIBUTE``: serves, logs its address, drains on SIGTERM and exits 0,
and refuses a port in use, an import error or a bad attribute with one line."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator

import pytest

from .conftest import LIVENESS, ROOT, Lines, ThreadServer, TlsFiles, rpcfw_command, run

SERVING = re.compile(r"rpcfw serve: serving (.+?)(?: \(with (.+)\))? on (\S+)$")


class Served:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [rpcfw_command(), "serve", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.process.stderr is not None
        self.stderr = Lines(self.process.stderr)
        match = SERVING.search(self.stderr.wait_for("rpcfw serve: serving"))
        assert match is not None
        self.services = match.group(1).split(", ")
        self.extras = (match.group(2) or "").split(", ")
        self.address = match.group(3)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(LIVENESS)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(LIVENESS)
        self.stderr.rest()  # the reader thread is done with the pipe
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def serve(cli_env: dict[str, str]) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.close()


def test_serve_a_service_object_with_reflection_and_call_it(
    cli_env: dict[str, str], serve: list[Served]
) -> None:
    served = Served(cli_env, "tests.cli.serve_app:echo", "--port", "0", "--reflection")
    serve.append(served)
    assert "echo.v1.Echo" in served.services
    assert served.extras == ["health", "reflection"]
    result = run(cli_env, "call", served.address, "echo.v1.Echo/Unary", "-d", '{"message": "x"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "x", "serverId": "served"}
    health = run(cli_env, "call", served.address, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}
    assert served.stop() == 0


@pytest.mark.parametrize(
    ("attribute", "server_id"), [("services", "factory"), ("async_services", "async-factory")]
)
def test_serve_a_sync_or_async_factory(
    cli_env: dict[str, str], serve: list[Served], attribute: str, server_id: str
) -> None:
    served = Served(cli_env, f"tests.cli.serve_app:{attribute}", "--port", "0", "--reflection")
    serve.append(served)
    result = run(cli_env, "call", served.address, "echo.v1.Echo/Unary", "-d", "{}")
    assert json.loads(result.stdout) == {"serverId": server_id}
    assert served.stop() == 0


def test_sigterm_drains_a_call_in_flight_and_exits_0(
    cli_env: dict[str, str], serve: list[Served]
) -> None:
    served = Served(cli_env, "tests.cli.serve_app:echo", "--port", "0", "--reflection")
    serve.append(served)
    with subprocess.Popen(
        [
            rpcfw_command(), "call", served.address, "echo.v1.Echo/ServerStream",
            "-d", '{"message": "drain", "count": 2, "delayMs": 300}',
        ],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=cli_env, cwd=ROOT,
    ) as call:  # fmt: skip
        assert call.stdout is not None
        replies = Lines(call.stdout)
        replies.wait_for('"drain"')  # the first reply: the call is in flight
        served.process.send_signal(signal.SIGTERM)
        assert len(replies.rest()) == 2  # the second reply still came
        assert call.wait(LIVENESS) == 0
    assert served.process.wait(LIVENESS) == 0
    served.stderr.wait_for("SIGTERM received: draining")
    served.stderr.wait_for("rpcfw serve: stopped")


def test_port_in_use_is_one_line_and_exit_4(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    port = plain_server.address.rsplit(":", 1)[1]
    result = run(cli_env, "serve", "tests.cli.serve_app:echo", "--port", port)
    assert result.returncode == 4
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("tests.cli.broken_app:services", "importing 'tests.cli.broken_app' failed: ImportError"),
        ("tests.cli.no_such_module:x", "cannot import 'tests.cli.no_such_module'"),
        ("tests.cli.serve_app:nope", "'tests.cli.serve_app' has no attribute 'nope'"),
        ("tests.cli.serve_app:not_a_service", "is of type 'int', not an rpcfw service"),
        ("tests.cli.serve_app:failing_factory", "failing_factory() failed: RuntimeError"),
        ("tests.cli.serve_app", "expected MODULE:ATTRIBUTE"),
    ],
)
def test_bad_import_paths_are_one_line_and_exit_3(
    cli_env: dict[str, str], app: str, expected: str
) -> None:
    result = run(cli_env, "serve", app, "--port", "0")
    assert result.returncode == 3, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_serve_over_tls_and_call_it_with_the_ca(
    cli_env: dict[str, str], serve: list[Served], tls_files: TlsFiles
) -> None:
    served = Served(
        cli_env, "tests.cli.serve_app:echo", "--port", "0", "--reflection",
        "--cert", str(tls_files.cert), "--key", str(tls_files.key),
    )  # fmt: skip
    serve.append(served)
    call = ["call", served.address, "echo.v1.Echo/Unary", "-d", '{"message": "tls"}']
    result = run(cli_env, *call, "--cacert", str(tls_files.ca))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["message"] == "tls"
    plaintext = run(cli_env, *call)
    assert plaintext.returncode == 14
    assert served.stop() == 0
