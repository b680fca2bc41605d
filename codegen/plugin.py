"""``protoc-gen-rpcfw``: a protoc plugin writing ``<file>_rpcfw.py`` service modules.

Parameters (``--rpcfw_opt=...`` or ``--rpcfw_out=PARAMS:OUT``, comma separated):

``messages=betterproto2`` (default) or ``messages=protobuf``
    which message classes the service modules import (see :mod:`rpcfw_codegen`).
"""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from .model import build_files
from .naming import Backend, rpcfw_module_path
from .render import render_file

__all__ = ["PluginError", "generate", "main", "parse_parameter"]


class PluginError(Exception):
    """A problem reported to protoc (which prints it and fails)."""


def parse_parameter(parameter: str) -> Backend:
    backend = Backend.BETTERPROTO2
    for item in filter(None, (part.strip() for part in parameter.split(","))):
        key, sep, value = item.partition("=")
        if key == "messages" and sep:
            try:
                backend = Backend(value)
            except ValueError:
                choices = ", ".join(b.value for b in Backend)
                raise PluginError(f"messages={value}: expected one of {choices}") from None
        else:
            raise PluginError(f"unknown parameter {item!r} (known: messages=...)")
    return backend


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Answer one request; problems go into ``response.error``, never raised."""
    features = plugin_pb2.CodeGeneratorResponse.Feature
    response = plugin_pb2.CodeGeneratorResponse(
        # Services read the same fields in every edition: any the parser accepts will do.
        supported_features=features.FEATURE_PROTO3_OPTIONAL | features.FEATURE_SUPPORTS_EDITIONS,
        minimum_edition=descriptor_pb2.EDITION_PROTO2,
        maximum_edition=descriptor_pb2.EDITION_MAX,
    )
    try:
        backend = parse_parameter(request.parameter)
        for proto in build_files(request.proto_file, request.file_to_generate):
            if proto.services:
                response.file.add(
                    name=rpcfw_module_path(proto.name), content=render_file(proto, backend)
                )
    except (PluginError, LookupError) as exc:
        response.error = str(exc)
    return response


def main() -> None:
    """Console entry point: CodeGeneratorRequest on stdin, response on stdout."""
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
