"""CLI polish: --version, help without odd labels on every command, protoc-gen-rpcfw --help,
and one line (no traceback) for bad input."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rpcfw

from .conftest import LIVENESS, PROTO, ROOT, run

COMMANDS = [
    [], ["gen"], ["demo"], ["bench"], ["call"], ["list"], ["describe"], ["serve"],
    ["registry"], ["registry", "ls"], ["registry", "watch"], ["registry", "config"],
    ["registry", "config", "get"], ["registry", "config", "set"], ["registry", "config", "delete"],
]  # fmt: skip
# what this typer shows without rpcfw's labels: Python types and braces
ODD = re.compile(r"<(bool|str|int|float|Path|list\[[^\]]*\]|int range|float range)>|\{[A-Z_/]+\}")


def test_version(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "--version")
    assert (result.returncode, result.stdout) == (0, f"rpcfw {rpcfw.__version__}\n")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "rpcfw")
def test_help_has_no_odd_labels(cli_env: dict[str, str], command: list[str]) -> None:
    result = run(cli_env, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: rpcfw" in result.stdout
    assert ODD.search(result.stdout) is None, result.stdout
    assert "--help" in result.stdout


def test_help_labels_name_the_value(cli_env: dict[str, str]) -> None:
    gen = run(cli_env, "gen", "--help").stdout
    assert "Usage: rpcfw gen [OPTIONS] PROTO_OR_DIR..." in gen
    assert "[betterproto2|protobuf]" in gen
    bench = run(cli_env, "bench", "--help").stdout
    assert re.search(r"--concurrency\s+-c\s+INTEGER", bench)
    ls = run(cli_env, "registry", "ls", "--help").stdout
    assert "[SERVICE]" in ls and re.search(r"--prefix\s+TEXT", ls)


def test_protoc_plugin_help_prints_usage(tmp_path: Path) -> None:
    plugin = shutil.which("protoc-gen-rpcfw")
    assert plugin is not None
    for args in (["--help"], ["-h"]):
        result = subprocess.run(
            [plugin, *args], capture_output=True, text=True, timeout=LIVENESS, cwd=tmp_path
        )
        assert result.returncode == 0
        assert result.stdout.startswith("usage: protoc-gen-rpcfw")
        assert "rpcfw gen" in result.stdout
    wrong = subprocess.run([plugin, "--bogus"], capture_output=True, text=True, timeout=LIVENESS)
    assert wrong.returncode == 2 and wrong.stdout == "" and "usage:" in wrong.stderr


def test_protoc_plugin_still_works_under_protoc(tmp_path: Path) -> None:
    plugin = shutil.which("protoc-gen-rpcfw")
    proto = ROOT / "proto"
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}",
            f"--plugin=protoc-gen-rpcfw={plugin}", f"--rpcfw_out=messages=protobuf:{tmp_path}",
            str(proto / "helloworld.proto"),
        ],
        capture_output=True, text=True, timeout=LIVENESS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "class GreeterBase" in (tmp_path / "helloworld_rpcfw.py").read_text()


def test_registry_ls_with_a_bad_etcd_url_is_one_line(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "registry", "ls", "--etcd", "not a url")
    assert result.returncode == 2
    assert "--etcd 'not a url'" in result.stderr and "host:port" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.fixture
def without_etcd_extra(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment as if aiohttp (the etcd extra) were not installed."""
    fake = tmp_path / "aiohttp"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'aiohttp'\", name='aiohttp')\n"
    )
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


@pytest.mark.parametrize(
    "args",
    [
        ["call", "etcd://127.0.0.1:2379/echo.v1.Echo", "echo.v1.Echo/Unary", *PROTO],
        ["list", "etcd://127.0.0.1:2379/echo.v1.Echo"],
        ["registry", "ls", "--etcd", "127.0.0.1:2379"],
        ["serve", "tests.cli.serve_app:echo", "--port", "0", "--registry", "etcd://127.0.0.1:1"],
    ],
    ids=["call", "list", "registry", "serve"],
)
def test_etcd_without_the_extra_names_the_extra(
    without_etcd_extra: dict[str, str], args: list[str]
) -> None:
    result = run(without_etcd_extra, *args)
    assert result.returncode != 0
    assert "pip install 'rpcfw[etcd]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_gen_without_include_hints_at_dash_i(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "api" / "v1").mkdir(parents=True)
    (tmp_path / "api" / "v1" / "types.proto").write_text(
        'syntax = "proto3";\npackage api.v1;\nmessage Thing { string name = 1; }\n'
    )
    service = tmp_path / "api" / "v1" / "service.proto"
    service.write_text(
        'syntax = "proto3";\npackage api.v1;\nimport "api/v1/types.proto";\n'
        "service Things { rpc Get (Thing) returns (Thing); }\n"
    )
    result = run(cli_env, "gen", str(service), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "File not found" in result.stderr
    assert "hint:" in result.stderr and "-I DIR" in result.stderr
    assert "Traceback" not in result.stderr
    fixed = run(cli_env, "gen", str(service), "-I", str(tmp_path), "-o", str(tmp_path / "out"))
    assert fixed.returncode == 0, fixed.stderr


def test_call_with_a_proto_protoc_cannot_find_hints_at_dash_i(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    proto = tmp_path / "svc.proto"
    proto.write_text('syntax = "proto3";\nimport "missing/dep.proto";\n')
    result = run(cli_env, "call", "127.0.0.1:1", "a.B/C", "--proto", str(proto))
    assert result.returncode == 64
    assert "File not found" in result.stderr and "-I DIR" in result.stderr
    assert result.stderr.count("\n") == 1
