"""Server reflection's pure parts: the descriptor index, the answers, the pool builder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from google.protobuf import descriptor_pb2

import rpcfw
from rpcfw._proto.grpc.health.v1 import health_pb2
from rpcfw.reflection import DescriptorIndex, build_pool
from rpcfw.reflection._service import answer
from rpcfw.reflection._versions import v1

FDP = descriptor_pb2.FileDescriptorProto


def _fdp(name: str, package: str, *deps: str) -> FDP:
    return FDP(name=name, package=package, dependency=deps, syntax="proto3")


def _service(name: str, files: rpcfw.ProtoFiles | None) -> type[rpcfw.ServiceBase]:
    class Service(rpcfw.ServiceBase):
        __rpcfw_service__: ClassVar[str] = name
        __rpcfw_files__ = files

        def __rpcfw_methods__(self) -> Mapping[str, rpcfw.ServerMethod[Any, Any]]:
            return {}

    return Service


def _files() -> rpcfw.ProtoFiles:
    base = _fdp("base.proto", "demo")
    base.message_type.add(name="Base").field.add(
        name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    )
    base.message_type[0].extension_range.add(start=100, end=200)
    top = _fdp("top.proto", "demo", "base.proto")
    svc = top.service.add(name="Svc")
    svc.method.add(name="Call", input_type=".demo.Base", output_type=".demo.Base")
    top.extension.add(
        name="tag", number=150, extendee=".demo.Base",
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )  # fmt: skip
    return rpcfw.ProtoFiles((top.SerializeToString(), base.SerializeToString()))


def _names(files: list[bytes] | None) -> list[str]:
    assert files is not None
    return [FDP.FromString(data).name for data in files]


def test_index_finds_files_symbols_and_extensions() -> None:
    index = DescriptorIndex([_service("demo.Svc", _files()), _service("plain.Hand", None)])
    assert index.services == ("demo.Svc", "plain.Hand")
    assert _names(index.file_by_name("top.proto")) == ["top.proto", "base.proto"]
    assert _names(index.file_containing_symbol("demo.Svc.Call")) == ["top.proto", "base.proto"]
    assert _names(index.file_containing_symbol(".demo.Base.id")) == ["base.proto"]
    assert _names(index.file_containing_extension("demo.Base", 150)) == ["top.proto", "base.proto"]
    assert index.extension_numbers("demo.Base") == [150]
    # a service written by hand (no descriptors) is listed, not described
    assert index.file_containing_symbol("plain.Hand") is None
    assert index.file_containing_extension("demo.Base", 151) is None
    assert index.extension_numbers("demo.Nope") is None


def test_answers_carry_the_request_and_not_found_errors() -> None:
    index = DescriptorIndex([_service("demo.Svc", _files())])
    request = v1.ServerReflectionRequest(host="h", file_containing_symbol="demo.Missing")
    response = answer(index, request)
    assert response.original_request == request and response.valid_host == "h"
    assert response.error_response.error_code == rpcfw.Status.NOT_FOUND.value
    empty = answer(index, v1.ServerReflectionRequest())
    assert empty.error_response.error_code == rpcfw.Status.INVALID_ARGUMENT.value
    listed = answer(index, v1.ServerReflectionRequest(list_services="*"))
    assert [s.name for s in listed.list_services_response.service] == ["demo.Svc"]


def test_proto_files_from_a_pb2_descriptor() -> None:
    files = rpcfw.ProtoFiles.from_descriptor(health_pb2.DESCRIPTOR)
    assert _names(list(files.serialized)) == ["grpc/health/v1/health.proto"]
    with pytest.raises(ValueError):
        rpcfw.ProtoFiles(())


def test_build_pool_adds_imports_first_whatever_the_order() -> None:
    files = [FDP.FromString(data) for data in _files().serialized]  # importer first
    pool = build_pool(files)
    method = pool.FindServiceByName("demo.Svc").methods_by_name["Call"]
    assert method.input_type.full_name == "demo.Base"
    with pytest.raises(KeyError, match=r"base\.proto"):
        build_pool(files[:1])
