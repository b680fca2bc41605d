"""Pins for the parts of dependencies rpcfw uses that are not their documented API.

Each test names what rpcfw relies on, where, and fails with a message saying so if a release of
the dependency moves or changes it, before rpcfw breaks in a less obvious way:

- hpack (rpcfw/transport/hpack_codec.py, hpack_decoder.py): the static table
  (``HeaderTable.STATIC_TABLE``) and the Huffman decoder (``huffman_table.decode_huffman``).
- asyncio (rpcfw/server/_drain.py ``_stop_accepting``): a listening socket of ``asyncio.Server``
  is served by a reader on its fd, so ``loop.remove_reader`` stops the accepts, and a connection
  accepted before gets its transport one loop step later (before anything queued after it).
- grpc_tools (codegen/driver.py, rpcfw/cli/proto_schema.py): the well-known protos bundled in
  the package's private ``_proto`` folder, and ``python -m grpc_tools.protoc``.
- betterproto2_compiler (codegen/naming.py, codegen/driver.py): ``casing.pascal_case`` (the
  flat names of nested messages) and ``plugin.main.main`` (the protoc plugin's entry point).
- protobuf (rpcfw/_proto/**/*_pb2.py, protoc's generated code checked into rpcfw): the
  ``google.protobuf.internal.builder`` functions that code calls.
- etcd3-py's private ``_retrieve_version`` (rpcfw/etcd/compat.py) is pinned by
  tests/etcd/test_compat.py, with the etcd tests.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import socket
import subprocess
import sys
from typing import Any

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable


def test_hpack_static_table_is_rfc7541_appendix_a() -> None:
    table = HeaderTable.STATIC_TABLE
    assert len(table) == 61
    assert table[0] == (b":authority", b"")
    assert table[1] == (b":method", b"GET")
    assert table[7] == (b":status", b"200")
    assert table[30] == (b"content-type", b"")
    assert table[60] == (b"www-authenticate", b"")


def test_hpack_decode_huffman_round_trips_hpacks_encoder() -> None:
    encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    for text in (b"application/grpc", b"grpc-python-rpcfw/0.1.0", b"", b"\x00\xff~"):
        assert decode_huffman(encoder.encode(text)) == text


async def test_asyncio_serves_a_listening_socket_with_a_reader_that_remove_reader_stops() -> None:
    """rpcfw/server/_drain.py stops accepting with ``loop.remove_reader`` on each listening socket
    before ``Server.close()`` (closing first loses a connection accepted just before: asyncio
    3.11 then fails its transport in ``Server._attach`` and leaves the socket open). That needs
    (1) the fd to be served by a reader of the loop, (2) no accept after its removal, (3) a
    connection accepted before to get its protocol's ``connection_made`` within the loop steps
    already queued."""
    loop = asyncio.get_running_loop()
    made: list[str] = []
    first = asyncio.Event()

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            made.append("made")
            first.set()
            transport.close()

    server = await loop.create_server(Recorder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    late: socket.socket | None = None
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(first.wait(), 10.0)  # liveness bound only
        writer.close()
        fds = [sock.fileno() for sock in server.sockets]
        assert all(loop.remove_reader(fd) for fd in fds), (
            "asyncio no longer serves a listening socket with a reader on its fd: "
            "rpcfw/server/_drain.py's _stop_accepting does not stop the accepts any more"
        )
        late = socket.create_connection(("127.0.0.1", port))  # waits in the kernel's backlog
        for _ in range(20):  # loop steps in which an accept would have happened
            await asyncio.sleep(0)
        assert made == ["made"], "asyncio accepted a connection after remove_reader"
    finally:
        server.close()
        if late is not None:
            late.settimeout(10.0)  # liveness bound only
            try:
                assert late.recv(1) == b"", "a connection left in the backlog was not closed"
            except ConnectionResetError:
                pass  # the kernel resets what was never accepted: closed, as needed
            finally:
                late.close()


def test_grpc_tools_still_bundles_the_well_known_protos_in_its_private_proto_folder() -> None:
    folder = importlib.resources.files("grpc_tools") / "_proto"
    for name in ("descriptor", "any", "duration", "timestamp", "empty", "wrappers", "struct"):
        assert (folder / "google" / "protobuf" / f"{name}.proto").is_file(), (
            f"grpc_tools no longer has _proto/google/protobuf/{name}.proto: codegen/driver.py "
            "and rpcfw/cli/proto_schema.py take the well-known protos from there"
        )


def test_grpc_tools_protoc_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "--version"],
        capture_output=True,
        text=True,
        timeout=60,  # liveness bound only
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("libprotoc"), (
        "`python -m grpc_tools.protoc` (codegen/driver.py's protoc) no longer runs: "
        f"{result.stdout}{result.stderr}"
    )


def test_betterproto2_compiler_pascal_case_names_nested_messages_as_codegen_expects() -> None:
    casing = importlib.import_module("betterproto2_compiler.casing")
    assert callable(getattr(casing, "pascal_case", None)), (
        "betterproto2_compiler.casing.pascal_case is gone: codegen/naming.py's flat_class_name "
        "uses it for the flat names of nested messages"
    )
    cases = {"Page.Cursor": "PageCursor", "page_cursor": "PageCursor", "Foo": "Foo"}
    assert {name: casing.pascal_case(name) for name in cases} == cases


def test_betterproto2_compiler_plugin_entry_point_is_where_codegen_calls_it() -> None:
    module = importlib.import_module("betterproto2_compiler.plugin.main")
    assert callable(getattr(module, "main", None)), (
        "betterproto2_compiler.plugin.main.main is gone: codegen/driver.py's protoc plugin "
        "script calls it"
    )


def test_protobuf_internal_builder_has_what_rpcfws_generated_code_calls() -> None:
    from google.protobuf.internal import builder

    for name in ("BuildMessageAndEnumDescriptors", "BuildTopDescriptorsAndMessages"):
        assert callable(getattr(builder, name, None)), (
            f"google.protobuf.internal.builder.{name} is gone: the protoc output checked into "
            "rpcfw/_proto must be regenerated for this protobuf"
        )
    health = importlib.import_module("rpcfw._proto.grpc.health.v1.health_pb2")
    assert health.DESCRIPTOR.services_by_name["Health"].full_name == "grpc.health.v1.Health"
