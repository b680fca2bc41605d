"""``rpcfw list --format plain|table``: a rich table for a person at a terminal, the plain
lines scripts read when stdout is a pipe (the default then) or with ``--format plain``."""

from __future__ import annotations

import os
import re
import subprocess

from ..conftest import ROOT
from .conftest import LIVENESS, PROTO, ThreadServer, rpcfw_command, run

METHODS = [
    "echo.v1.Echo/Unary",
    "echo.v1.Echo/ServerStream",
    "echo.v1.Echo/ClientStream",
    "echo.v1.Echo/Bidi",
]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KINDS = {
    "echo.v1.Echo/Unary": "unary",
    "echo.v1.Echo/ServerStream": "server streaming",
    "echo.v1.Echo/ClientStream": "client streaming",
    "echo.v1.Echo/Bidi": "bidi",
}


def row_of(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first`` (box characters dropped)."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line) if c.strip()]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def test_method_table_has_the_headers_and_every_method(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    result = run(cli_env, "list", echo_server.address, "echo.v1.Echo", "--format", "table")
    assert result.returncode == 0, result.stderr
    header = row_of(result.stdout, "Method")
    assert header == ["Method", "Kind", "Request", "Response"]
    for method, kind in KINDS.items():
        assert row_of(result.stdout, method) == [
            method, kind, "echo.v1.EchoRequest", "echo.v1.EchoResponse",
        ]  # fmt: skip
    assert "\x1b[" not in result.stdout  # no colours into a pipe


def test_service_table_counts_the_methods(
    cli_env: dict[str, str], echo_server: ThreadServer, plain_server: ThreadServer
) -> None:
    reflected = run(cli_env, "list", echo_server.address, "--format", "table")
    assert reflected.returncode == 0, reflected.stderr
    assert row_of(reflected.stdout, "Service") == ["Service", "Methods"]
    assert row_of(reflected.stdout, "echo.v1.Echo") == ["echo.v1.Echo", "4"]
    assert row_of(reflected.stdout, "grpc.health.v1.Health")[1].isdigit()
    from_proto = run(cli_env, "list", plain_server.address, *PROTO, "--format", "table")
    assert from_proto.returncode == 0, from_proto.stderr
    assert row_of(from_proto.stdout, "echo.v1.Echo") == ["echo.v1.Echo", "4"]


def test_plain_format_prints_exactly_the_old_lines(
    cli_env: dict[str, str], echo_server: ThreadServer, plain_server: ThreadServer
) -> None:
    methods = run(cli_env, "list", echo_server.address, "echo.v1.Echo", "--format", "plain")
    assert (methods.returncode, methods.stdout) == (0, "".join(m + "\n" for m in METHODS))
    services = run(cli_env, "list", echo_server.address, "--format", "plain")
    assert services.returncode == 0, services.stderr
    lines = services.stdout.splitlines()
    assert lines == sorted(lines) and {"echo.v1.Echo", "grpc.health.v1.Health"} <= set(lines)
    assert all(" " not in line for line in lines)
    from_proto = run(cli_env, "list", plain_server.address, *PROTO, "--format", "plain")
    assert (from_proto.returncode, from_proto.stdout) == (0, "echo.v1.Echo\n")


def test_piped_output_without_format_is_plain(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    for extra in ([], ["echo.v1.Echo"]):
        piped = run(cli_env, "list", echo_server.address, *extra)
        plain = run(cli_env, "list", echo_server.address, *extra, "--format", "plain")
        assert piped.returncode == plain.returncode == 0, piped.stderr
        assert piped.stdout == plain.stdout


def test_unknown_format_is_a_usage_error(cli_env: dict[str, str]) -> None:
    for command in (["list", "127.0.0.1:1"], ["registry", "ls", "--etcd", "127.0.0.1:1"]):
        result = run(cli_env, *command, "--format", "json")
        assert result.returncode == 2
        assert "plain" in result.stderr and "table" in result.stderr


def test_a_terminal_gets_the_table(cli_env: dict[str, str], echo_server: ThreadServer) -> None:
    """End to end: stdout a pseudo-terminal, no --format."""
    primary, secondary = os.openpty()
    try:
        with subprocess.Popen(
            [rpcfw_command(), "list", echo_server.address, "echo.v1.Echo"],
            stdin=subprocess.DEVNULL, stdout=secondary, stderr=subprocess.PIPE,
            env={**cli_env, "TERM": "xterm", "NO_COLOR": "1"}, cwd=ROOT,
        ) as child:  # fmt: skip
            os.close(secondary)
            secondary = -1
            output = read_all(primary)
            assert child.wait(LIVENESS) == 0, child.stderr.read() if child.stderr else ""
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    text = ANSI.sub("", output.decode()).replace("\r\n", "\n")
    assert row_of(text, "Method") == ["Method", "Kind", "Request", "Response"]
    assert row_of(text, "echo.v1.Echo/Bidi")[1] == "bidi"


def read_all(fd: int) -> bytes:
    """Everything written to the pseudo-terminal ``fd`` until its other side closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
