"""protoc-gen-rpcfw as a plain protoc plugin, and its request/response handling."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from rpcfw_codegen import Backend, GenError, generate, generate_tree
from rpcfw_codegen.plugin import PluginError, parse_parameter

from .conftest import PROTO
from .test_expected import EXPECTED

Response = plugin_pb2.CodeGeneratorResponse


def _request(parameter: str = "") -> plugin_pb2.CodeGeneratorRequest:
    f = descriptor_pb2.FileDescriptorProto(name="x/y.proto", package="x", syntax="proto3")
    f.message_type.add(name="M")
    f.service.add(name="S").method.add(name="Do", input_type=".x.M", output_type=".x.M")
    lonely = descriptor_pb2.FileDescriptorProto(name="x/z.proto", package="x")
    return plugin_pb2.CodeGeneratorRequest(
        file_to_generate=["x/y.proto", "x/z.proto"], parameter=parameter, proto_file=[f, lonely]
    )


def test_response_declares_proto3_optional_and_editions() -> None:
    response = generate(_request())
    assert response.supported_features & Response.FEATURE_PROTO3_OPTIONAL
    assert response.supported_features & Response.FEATURE_SUPPORTS_EDITIONS
    assert not response.error
    assert [f.name for f in response.file] == ["x/y_rpcfw.py"]  # z.proto has no service


@pytest.mark.parametrize("backend", ["betterproto2", "protobuf"])
def test_file_without_services_gets_a_module_of_its_types(backend: str) -> None:
    request = _request(f"messages={backend}")
    lonely = request.proto_file[1]
    lonely.message_type.add(name="Note").nested_type.add(name="Part")
    lonely.enum_type.add(name="Mood").value.add(name="MOOD_UNSPECIFIED", number=0)
    response = generate(request)
    assert not response.error
    files = {f.name: f.content for f in response.file}
    assert sorted(files) == ["x/y_rpcfw.py", "x/z_rpcfw.py"]
    assert '__all__ = ["Mood", "Note", "NotePart"]' in files["x/z_rpcfw.py"]
    assert "import rpcfw" not in files["x/z_rpcfw.py"]  # nothing but the re-exports


@pytest.mark.parametrize(
    ("parameter", "message"),
    [("messages=json", "messages=json: expected one of"), ("flavour=x", "unknown parameter")],
)
def test_bad_parameter_is_reported_to_protoc(parameter: str, message: str) -> None:
    response = generate(_request(parameter))
    assert message in response.error
    assert not response.file


def test_parameter_parsing() -> None:
    assert parse_parameter("").value == "betterproto2"
    assert parse_parameter("messages=protobuf").value == "protobuf"
    with pytest.raises(PluginError):
        parse_parameter("messages")


def _plugin_executable(tmp_path: Path) -> Path:
    script = tmp_path / "protoc-gen-rpcfw"
    script.write_text(f"#!{sys.executable}\nfrom rpcfw_codegen.plugin import main\nmain()\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.parametrize(
    ("backend", "message_flags"),
    [
        ("protobuf", ["--python_out={out}", "--pyi_out={out}"]),
        ("betterproto2", ["--python_betterproto2_out=client_generation=none:{out}"]),
    ],
)
def test_plain_protoc_plugin_matches_rpcfw_gen(
    tmp_path: Path, backend: str, message_flags: list[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    if backend == "betterproto2" and not shutil.which(
        "protoc-gen-python_betterproto2", path=env["PATH"]
    ):
        pytest.fail(
            "protoc-gen-python_betterproto2 is not on PATH nor beside the interpreter: "
            "betterproto2_compiler (a dependency of rpcfw) is not installed with its console "
            "scripts; pip install -e '.[dev]' installs it (a failure, not a skip: CI runs this)",
            pytrace=False,
        )
    proc = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}"]
        + [f"--plugin=protoc-gen-rpcfw={_plugin_executable(tmp_path)}"]
        + [f"--rpcfw_out=messages={backend}:{out}"]
        + [flag.format(out=out) for flag in message_flags]
        + [str(PROTO / "helloworld.proto"), str(PROTO / "echo/v1/echo.proto")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ["helloworld_rpcfw.py", "echo/v1/echo_rpcfw.py"]:
        assert (out / name).read_text() == (EXPECTED / backend / name).read_text()


def test_console_script_is_installed() -> None:
    script = shutil.which("protoc-gen-rpcfw", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.fail(
            f"protoc-gen-rpcfw is not installed beside {sys.executable}: rpcfw is not installed "
            "with its console scripts; pip install -e '.[dev]' installs it (a failure, not a "
            "skip: CI installs the package, so this test must run)",
            pytrace=False,
        )
    request = _request("messages=protobuf").SerializeToString()
    proc = subprocess.run([script], input=request, capture_output=True, check=True)
    assert [f.name for f in Response.FromString(proc.stdout).file] == ["x/y_rpcfw.py"]


EDITIONS = """\
edition = "2023";

package edtest;

message Note {
  string text = 1;
}

service Notes {
  rpc Add(Note) returns (Note) {
    option idempotency_level = IDEMPOTENT;
  }
}
"""


def test_editions_file_with_protobuf_backend(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "edtest.proto").write_text(EDITIONS)
    generate_tree([tmp_path / "p"], tmp_path / "out", backend=Backend.PROTOBUF)
    text = (tmp_path / "out" / "edtest_rpcfw.py").read_text()
    assert '"/edtest.Notes/Add",' in text and "idempotent=True" in text


def test_editions_file_with_betterproto2_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "edtest.proto").write_text(EDITIONS)
    with pytest.raises(GenError, match="editions"):
        generate_tree([tmp_path / "p"], tmp_path / "out", backend=Backend.BETTERPROTO2)
    assert not (tmp_path / "out").exists()
