"""The descriptors generated service bases carry for server reflection (``__rpcfw_files__``).

Both backends must hand the runtime the same files: the service's .proto first, then every
file it imports, transitively, without source info. betterproto2 embeds them as bytes
literals (codegen/descriptors.py), protobuf reads them from the ``_pb2`` module.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from rpcfw_codegen import generate
from rpcfw_codegen.descriptors import file_closure, proto_files_code
from rpcfw_codegen.naming import Backend

import rpcfw

from .conftest import PACKAGES

FDP = descriptor_pb2.FileDescriptorProto

DEEP_CLOSURE = [
    "a/b/c/deep.proto",
    "common/v1/types.proto",
    "google/protobuf/empty.proto",
]


def _files(module: str, base: str) -> list[FDP]:
    files = getattr(importlib.import_module(module), base).__rpcfw_files__
    assert isinstance(files, rpcfw.ProtoFiles)
    return [FDP.FromString(data) for data in files.serialized]


@pytest.mark.parametrize("backend", list(PACKAGES), ids=lambda b: b.value)
def test_base_carries_its_file_then_its_imports(importable: Path, backend: Backend) -> None:
    files = _files(f"{PACKAGES[backend]}.a.b.c.deep_rpcfw", "DeepBase")
    assert [f.name for f in files] == DEEP_CLOSURE
    assert [s.name for s in files[0].service] == ["Deep"]
    assert not any(f.HasField("source_code_info") for f in files)


def test_both_backends_carry_the_same_descriptors(importable: Path) -> None:
    for module, base in [
        ("a.b.c.deep_rpcfw", "DeepBase"),
        ("echo.v1.echo_rpcfw", "EchoBase"),
        ("wkt_rpcfw", "ClockBase"),
    ]:
        bp2, pb = (_files(f"{pkg}.{module}", base) for pkg in PACKAGES.values())
        assert bp2 == pb, module


def test_file_closure_visits_each_import_once_depth_first() -> None:
    def fdp(name: str, *deps: str) -> FDP:
        proto = FDP(name=name, dependency=deps)
        proto.source_code_info.location.add(path=[4], span=[1, 2, 3])
        return proto

    protos = [fdp("top.proto", "a.proto", "b.proto"), fdp("a.proto", "c.proto")]
    protos += [fdp("b.proto", "c.proto"), fdp("c.proto"), fdp("unrelated.proto")]
    closure = [FDP.FromString(data) for data in file_closure(protos, "top.proto")]
    assert [f.name for f in closure] == ["top.proto", "a.proto", "c.proto", "b.proto"]
    assert not any(f.HasField("source_code_info") for f in closure)
    with pytest.raises(LookupError, match=r"missing\.proto"):
        file_closure([fdp("top.proto", "missing.proto")], "top.proto")


def test_embedded_literal_is_the_bytes_and_fits_the_line_length() -> None:
    blob = bytes(range(256)) * 3 + b"\"\\'\n\t\r"
    code = proto_files_code("x.proto", Backend.BETTERPROTO2, [blob, b""], lambda name: name)
    source = "\n".join(code.lines)
    assert max(len(line) for line in code.lines) <= 88
    namespace: dict[str, object] = {"rpcfw": rpcfw}
    exec(source, namespace)  # the generated definition, as the module runs it
    files = namespace[code.name]
    assert isinstance(files, rpcfw.ProtoFiles)
    assert files.serialized == (blob, b"")


def test_the_plugin_embeds_the_files_protoc_hands_it() -> None:
    """protoc-gen-rpcfw (plugin mode) gets the imports in the request, with source info for
    the files to generate: what it embeds has none."""
    from google.protobuf.compiler import plugin_pb2

    service = FDP(name="svc.proto", package="p", dependency=["msgs.proto"], syntax="proto3")
    method = service.service.add(name="S").method.add(name="M")
    method.input_type = method.output_type = ".p.Msg"
    service.source_code_info.location.add(path=[6, 0], span=[1, 1, 1], leading_comments=" S\n")
    messages = FDP(name="msgs.proto", package="p", syntax="proto3")
    messages.message_type.add(name="Msg")
    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=["svc.proto"], parameter="messages=betterproto2"
    )
    request.proto_file.extend([messages, service])
    response = generate(request)
    assert not response.error
    (module,) = response.file
    namespace: dict[str, object] = {"rpcfw": rpcfw}
    start = module.content.index("_PROTO_FILES = ")
    end = module.content.index("\n)\n", start) + 3
    exec(module.content[start:end], namespace)
    files = namespace["_PROTO_FILES"]
    assert isinstance(files, rpcfw.ProtoFiles)
    stripped = FDP()
    stripped.CopyFrom(service)
    stripped.ClearField("source_code_info")
    assert [FDP.FromString(data) for data in files.serialized] == [stripped, messages]
    assert '"""S"""' in module.content  # the comment still became the docstring
