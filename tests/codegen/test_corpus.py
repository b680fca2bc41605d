"""A real-world corpus through `rpcfw gen`, both backends: generated, imported, mypy --strict.

The corpus: every .proto that googleapis-common-protos installs (google/api, rpc, type, cloud,
logging, longrunning, ...), protobuf's well-known types as grpcio-tools bundles them, and gRPC's
own health, reflection (v1, v1alpha) and channelz protos. The grpcio-health-checking,
grpcio-reflection and grpcio-channelz packages ship only compiled ``_pb2`` modules, so those
.proto files are kept in ``corpus/`` (from the grpc-proto repository) and checked here against
the descriptors those packages embed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from rpcfw_codegen import Backend, generate_tree
from rpcfw_codegen.driver import wkt_include_dir

from .conftest import REPO

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parent / "corpus"
PACKAGES = {Backend.BETTERPROTO2: "corpus_bp2", Backend.PROTOBUF: "corpus_pb"}
# corpus file -> the module of the grpcio package that embeds its descriptor
GRPCIO_PACKAGES = {
    "grpc/health/v1/health.proto": "grpc_health.v1.health_pb2",
    "grpc/reflection/v1alpha/reflection.proto": "grpc_reflection.v1alpha.reflection_pb2",
    "grpc/channelz/v1/channelz.proto": "grpc_channelz.v1.channelz_pb2",
}


def _googleapis_root() -> Path:
    """The directory googleapis-common-protos installed ``google/api/*.proto`` below."""
    spec = importlib.util.find_spec("google.api")
    assert spec is not None and spec.submodule_search_locations, "googleapis-common-protos"
    return Path(next(iter(spec.submodule_search_locations))).parents[1]


def _corpus() -> tuple[list[Path], list[Path]]:
    """(files, include dirs) of the whole corpus."""
    google = _googleapis_root()
    common = sorted(
        p for p in (google / "google").rglob("*.proto") if "protobuf" not in p.parts[:-1]
    )
    wkt = sorted((wkt_include_dir() / "google" / "protobuf").rglob("*.proto"))
    grpc = sorted(CORPUS.rglob("*.proto"))
    assert len(common) >= 60 and len(wkt) >= 14 and len(grpc) == 4, (common, wkt, grpc)
    return [*common, *wkt, *grpc], [wkt_include_dir(), google, CORPUS]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    files, includes = _corpus()
    for backend, package in PACKAGES.items():
        generate_tree(files, root / package, includes=includes, backend=backend)
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def _without_json_names(proto: descriptor_pb2.FileDescriptorProto) -> None:
    """Drop what protoc fills in and a ``_pb2`` module leaves out (json_name)."""
    todo = list(proto.message_type)
    while todo:
        message = todo.pop()
        for field in message.field:
            field.ClearField("json_name")
        todo += message.nested_type


def test_corpus_protos_are_those_of_the_grpcio_packages(tmp_path: Path) -> None:
    fds_path = tmp_path / "fds.bin"
    proc = _run(
        tmp_path,
        "-m",
        "grpc_tools.protoc",
        f"-I{CORPUS}",
        f"-I{wkt_include_dir()}",
        f"--descriptor_set_out={fds_path}",
        *GRPCIO_PACKAGES,
    )
    assert proc.returncode == 0, proc.stderr
    ours = descriptor_pb2.FileDescriptorSet.FromString(fds_path.read_bytes()).file
    for proto, module in zip(ours, GRPCIO_PACKAGES.values(), strict=True):
        # in a subprocess: grpcio's modules must not share this process's descriptor pool
        code = f"import sys, {module} as m; sys.stdout.buffer.write(m.DESCRIPTOR.serialized_pb)"
        dumped = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
        theirs = descriptor_pb2.FileDescriptorProto.FromString(dumped.stdout)
        _without_json_names(proto)
        for field in ("package", "message_type", "enum_type", "service"):
            assert getattr(proto, field) == getattr(theirs, field), (proto.name, field)


_IMPORT_ALL = """
import importlib, pathlib, sys
names = []
for package in sys.argv[1:]:
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        parts = path.with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_generated_module_imports(corpus_root: Path) -> None:
    proc = _run(corpus_root, "-c", _IMPORT_ALL, *PACKAGES.values())
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 150


CONSUMER = """\
from typing import assert_type

import rpcfw

from {pkg}.google.longrunning.operations_proto_rpcfw import (
    GetOperationRequest,
    Operation,
    OperationsStub,
)
from {pkg}.google.rpc.status_rpcfw import Status
from {pkg}.google.type.date_rpcfw import Date
from {pkg}.grpc.channelz.v1.channelz_rpcfw import ChannelzStub, GetServerRequest
from {pkg}.grpc.health.v1.health_rpcfw import (
    HealthCheckRequest,
    HealthCheckResponse,
    HealthCheckResponseServingStatus,
    HealthStub,
)


async def use(channel: rpcfw.Channel) -> None:
    reply = await HealthStub(channel).check(HealthCheckRequest(service="x"))
    assert_type(reply, HealthCheckResponse)
    serving: HealthCheckResponseServingStatus = reply.status
    print(serving, Status(code=5, message="gone"), Date(year=2024))
    operation = await OperationsStub(channel).get_operation(GetOperationRequest(name="op"))
    assert_type(operation, Operation)
    await ChannelzStub(channel).get_server(GetServerRequest(server_id=1))
"""

MYPY_INI = """\
[mypy]
strict = True
python_version = 3.11
warn_unreachable = True

[mypy-rpcfw.*]
ignore_errors = True
"""


def test_generated_code_is_mypy_strict_clean(corpus_root: Path) -> None:
    # the corpus has what protoc's .pyi got wrong: top-level extensions (their field numbers
    # were declared ClassVar outside a class)
    annotations = corpus_root / PACKAGES[Backend.PROTOBUF] / "google/api/annotations_pb2.pyi"
    assert "\nHTTP_FIELD_NUMBER: int\n" in annotations.read_text()
    targets = []
    for pkg in PACKAGES.values():
        (corpus_root / f"use_{pkg}.py").write_text(CONSUMER.format(pkg=pkg))
        targets += [pkg, f"use_{pkg}.py"]
    (corpus_root / "mypy.ini").write_text(MYPY_INI)
    cache = corpus_root / ".mypy_cache"
    proc = _run(
        corpus_root,
        "-m",
        "mypy",
        "--config-file",
        "mypy.ini",
        "--cache-dir",
        str(cache),
        "--show-error-codes",
        *targets,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
