"""``rpcfw registry ls|watch`` against a real etcd."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

import rpcfw
from rpcfw.cli import app
from rpcfw.registry import etcd_registrar
from tests.echo_service import LIVENESS, make_echo_service
from tests.etcd_server import EtcdProcess, free_port
from tests.integration.test_retries import retry_config


async def test_registry_ls_lists_instances_and_watch_shows_a_join(
    echo_pb: ModuleType, etcd: EtcdProcess
) -> None:
    a = rpcfw.Server([make_echo_service(echo_pb, "a")], registry=etcd_registrar(etcd.endpoint))
    await a.start()
    try:
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, app, ["registry", "ls", "--etcd", etcd.endpoint]
        )
        assert result.exit_code == 0, result.output
        assert "echo.v1.Echo" in result.output and f"127.0.0.1:{a.port}" in result.output
        assert "SERVICE" in result.output.splitlines()[0]

        # the watch runs as a process whose output is read as it comes: b starts once the
        # watch printed the first state (one instance), and the test ends once it printed two
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rpcfw", "registry", "watch", "echo.v1.Echo",
            "--etcd", etcd.endpoint, "--duration", str(6 * LIVENESS),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert watch.stdout is not None
        output: list[str] = []

        async def read_until(text: str) -> None:
            assert watch.stdout is not None
            while not any(text in line for line in output):
                line = (await watch.stdout.readline()).decode()
                assert line, f"the watch ended before printing {text!r}: {output}"
                output.append(line)

        b = None
        try:
            async with asyncio.timeout(3 * LIVENESS):  # liveness bound only
                await read_until("-- 1 instance(s) of echo.v1.Echo")
                b = rpcfw.Server(
                    [make_echo_service(echo_pb, "b")], registry=etcd_registrar(etcd.endpoint)
                )
                await b.start()
                await read_until("-- 2 instance(s) of echo.v1.Echo")
                await read_until(f"127.0.0.1:{b.port}")  # in the table under it
        finally:
            if watch.returncode is None:
                watch.kill()
            await watch.wait()
            if b is not None:
                await b.stop(grace=1)
        assert output[0].startswith("-- 1 instance(s)"), output
    finally:
        await a.stop(grace=1)


async def test_registry_ls_is_plain_unless_a_table_is_asked_for(
    echo_pb: ModuleType, etcd: EtcdProcess
) -> None:
    """Not a terminal (CliRunner): the aligned plain columns, as with --format plain;
    --format table draws a rich table with the same cells."""
    a = rpcfw.Server([make_echo_service(echo_pb, "a")], registry=etcd_registrar(etcd.endpoint))
    await a.start()
    try:
        runner = CliRunner()
        ls = ["registry", "ls", "--etcd", etcd.endpoint]
        default, plain, table = [
            await asyncio.to_thread(runner.invoke, app, [*ls, *extra])
            for extra in ([], ["--format", "plain"], ["--format", "table"])
        ]
    finally:
        await a.stop(grace=1)
    assert default.exit_code == plain.exit_code == table.exit_code == 0, table.output
    assert default.output == plain.output
    header, row = plain.output.splitlines()
    assert header.split() == ["SERVICE", "INSTANCE", "ADDRESS", "WEIGHT", "ZONE", "VERSION"]
    assert row.split()[0] == "echo.v1.Echo" and f"127.0.0.1:{a.port}" in row.split()
    cells = [line.replace("│", " ").replace("┃", " ").split() for line in table.output.splitlines()]
    assert ["Service", "Instance", "Address", "Weight", "Zone", "Version"] in cells
    assert row.split() in cells  # the same values


@pytest.mark.parametrize("command", [["ls"], ["watch", "echo.v1.Echo", "--duration", "30"]])
def test_registry_command_with_etcd_unreachable_says_so_and_exits_3(command: list[str]) -> None:
    """Fault: nothing listens on the etcd port."""
    port = free_port()
    result = CliRunner().invoke(app, ["registry", *command, "--etcd", f"127.0.0.1:{port}"])
    assert result.exit_code == 3, result.output
    assert f"error: etcd at 127.0.0.1:{port}" in result.output
    assert f"cannot connect to 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output and "ConnectionKey" not in result.output
    assert result.output.count("error:") == 1


@pytest.mark.parametrize("args", [["registry"], ["registry", "ls"]])
def test_registry_without_required_arguments_is_a_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 or "Usage" in result.output


def test_registry_config_set_get_delete_and_refuses_an_invalid_config(
    etcd: EtcdProcess, tmp_path: Path
) -> None:
    runner = CliRunner()
    where = ["--etcd", etcd.endpoint]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(retry_config(max_attempts=3)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(retry_config(max_attempts=1)))  # maxAttempts must be >= 2

    result = runner.invoke(app, ["registry", "config", "get", "echo.v1.Echo", *where])
    assert result.exit_code == 1, result.output
    assert "no service config for echo.v1.Echo" in result.output

    result = runner.invoke(app, ["registry", "config", "set", "echo.v1.Echo", str(good), *where])
    assert result.exit_code == 0, result.output
    assert "stored /rpcfw/config/echo.v1.Echo" in result.output
    result = runner.invoke(app, ["registry", "config", "get", "echo.v1.Echo", *where])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == retry_config(max_attempts=3)

    result = runner.invoke(app, ["registry", "config", "set", "echo.v1.Echo", str(bad), *where])
    assert result.exit_code == 2, result.output
    assert "invalid service config" in result.output
    result = runner.invoke(app, ["registry", "config", "get", "echo.v1.Echo", *where])
    assert json.loads(result.stdout) == retry_config(max_attempts=3)  # unchanged

    result = runner.invoke(app, ["registry", "config", "delete", "echo.v1.Echo", *where])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["registry", "config", "get", "echo.v1.Echo", *where])
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize("command", [["get", "echo.v1.Echo"], ["delete", "echo.v1.Echo"]])
def test_registry_config_with_etcd_unreachable_exits_3(command: list[str]) -> None:
    port = free_port()
    result = CliRunner().invoke(
        app, ["registry", "config", *command, "--etcd", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 3, result.output
    assert f"error: etcd at 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
