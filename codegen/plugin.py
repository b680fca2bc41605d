"""``protoc-gen-rpcfw``: a protoc plugin writing a ``<file>_rpcfw.py`` module per .proto file
(services, and the file's messages and enums re-exported).

Parameters (``--rpcfw_opt=...`` or ``--rpcfw_out=PARAMS:OUT``, comma separated):

``messages=betterproto2`` (default) or ``messages=protobuf``
    which message classes the service modules import (see :mod:`rpcfw_codegen`).
"""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from .descriptors import file_closure
from .model import build_files
from .naming import Backend, rpcfw_module_path
from .render import render_file, render_types_module

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
                descriptors = file_closure(request.proto_file, proto.name)
                response.file.add(
                    name=rpcfw_module_path(proto.name),
                    content=render_file(proto, backend, descriptors),
                )
            elif proto.types:  # one import place per .proto: its messages and enums
                content = render_types_module(proto, backend)
                response.file.add(name=rpcfw_module_path(proto.name), content=content)
    except (PluginError, LookupError) as exc:
        response.error = str(exc)
    return response


USAGE = """\
usage: protoc-gen-rpcfw (run by protoc, not by hand)

A protoc plugin: it reads a CodeGeneratorRequest on stdin and writes a CodeGeneratorResponse
(the <file>_rpcfw.py modules) on stdout. Use it through protoc, e.g.

  python -m grpc_tools.protoc -Iproto --python_out=gen --pyi_out=gen \\
      --rpcfw_out=messages=protobuf:gen proto/helloworld.proto

or let `rpcfw gen PROTO_OR_DIR -o OUT -I DIR` run protoc for you.
Parameters (--rpcfw_opt=... or --rpcfw_out=PARAMS:OUT): messages=betterproto2 (default) or
messages=protobuf.
"""


def main() -> None:
    """Console entry point: CodeGeneratorRequest on stdin, response on stdout. Run by hand
    (any argument, or a terminal on stdin or stdout), it prints its usage instead."""
    args = sys.argv[1:]
    if args or sys.stdin.isatty() or sys.stdout.isatty():
        known = not args or args[0] in ("-h", "--help")
        (sys.stdout if known else sys.stderr).write(USAGE)
        sys.exit(0 if known else 2)
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
