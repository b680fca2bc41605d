"""gRPC server reflection across stacks.

- grpcio-reflection's client (``ProtoReflectionDescriptorDatabase`` on a grpcio channel, in a
  worker thread: it is synchronous) against an rpcfw server with ``reflection=True``: it lists
  the services, describes them (a ``DescriptorPool`` fed by the database) and calls methods
  with dynamic messages built from what it reflected, for services generated with either
  message backend, over v1alpha (its own) and v1 (the same messages on the v1 path).
- Error responses (NOT_FOUND for what the server does not know) in both versions, on a raw
  grpcio stream that goes on answering afterwards.
- rpcfw's ``ReflectionClient`` against a grpcio server with grpcio-reflection enabled (v1alpha
  only: the client falls back from v1), and against rpcfw servers.

The protos (tests/interop/reflection_protos) make the descriptors worth checking: the service
file imports a file of types (which imports a well-known type) and a file declaring a custom
method option (an extension of ``google.protobuf.MethodOptions``, from descriptor.proto).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection as grpc_reflection
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import rpcfw
from rpcfw.reflection import (
    V1_SERVICE,
    V1ALPHA_SERVICE,
    DescriptorIndex,
    ReflectionClient,
    ReflectionError,
    reflection_services,
)
from rpcfw.reflection._service import answer
from rpcfw.reflection._versions import v1

PROTOS = Path(__file__).resolve().parent / "reflection_protos"
SERVICE = "inventory.v1.Inventory"
SERVICE_FILE = "inventory/v1/inventory.proto"
CLOSURE = {
    SERVICE_FILE,
    "inventory/v1/options.proto",
    "inventory/v1/types.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/descriptor.proto",
}
EXTENSION = 50123  # audit_tag, an extension of google.protobuf.MethodOptions
PATHS = {
    "v1": f"/{V1_SERVICE}/ServerReflectionInfo",
    "v1alpha": f"/{V1ALPHA_SERVICE}/ServerReflectionInfo",
}


@pytest.fixture(scope="module")
def inventory_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """The generated inventory service module, per message backend."""
    from rpcfw_codegen import Backend, generate_tree

    root = tmp_path_factory.mktemp("reflection_gen")
    for backend in Backend:
        generate_tree([PROTOS], root / f"refl_{backend.value}", includes=[PROTOS], backend=backend)
    sys.path.insert(0, str(root))
    try:
        yield {
            backend.value: importlib.import_module(
                f"refl_{backend.value}.inventory.v1.inventory_rpcfw"
            )
            for backend in Backend
        }
    finally:
        sys.path.remove(str(root))


@pytest.fixture(params=["betterproto2", "protobuf"])
def inventory(
    request: pytest.FixtureRequest, inventory_modules: dict[str, ModuleType]
) -> ModuleType:
    return inventory_modules[request.param]


def make_inventory(mod: ModuleType) -> Any:
    """An Inventory service: Get answers count 7 and KIND_TOOL, Browse ``count`` items."""
    # betterproto2 wants its enum class (ItemKind, beside the messages); protobuf takes ints
    kind_tool = getattr(sys.modules[mod.__package__ or ""], "ItemKind", int)(1)

    class Inventory(mod.InventoryBase):  # type: ignore[misc,name-defined]
        async def get(self, request: Any, context: rpcfw.CallContext) -> Any:
            return mod.Item(sku=request.sku, count=7, kind=kind_tool)

        async def browse(self, request: Any, context: rpcfw.CallContext) -> AsyncIterator[Any]:
            for index in range(request.count):
                yield mod.Item(sku=f"{request.sku}-{index}", count=index)

    return Inventory()


@pytest.fixture
async def rpcfw_server(inventory: ModuleType) -> AsyncIterator[rpcfw.Server]:
    server = rpcfw.Server([make_inventory(inventory)], reflection=True)
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=1)


# -- grpcio-reflection's client against rpcfw ------------------------------------------------


class _V1Stub:
    """grpcio-reflection's stub, on the v1 path: v1's messages are v1alpha's, field for field."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.ServerReflectionInfo = channel.stream_stream(
            PATHS["v1"],
            request_serializer=alpha_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=alpha_pb2.ServerReflectionResponse.FromString,
        )


def grpcio_database(channel: grpc.Channel, version: str) -> ProtoReflectionDescriptorDatabase:
    database = ProtoReflectionDescriptorDatabase(channel)
    if version == "v1":
        database._stub = _V1Stub(channel)  # its client knows only v1alpha
    return database


def describe_and_call(address: str, version: str) -> dict[str, Any]:
    """What a reflection-driven tool does (grpcurl list / describe / call), with grpcio."""
    with grpc.insecure_channel(address) as channel:
        database = grpcio_database(channel, version)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        get = service.methods_by_name["Get"]
        browse = service.methods_by_name["Browse"]
        request_class = message_factory.GetMessageClass(get.input_type)
        reply_class = message_factory.GetMessageClass(get.output_type)
        call_get = channel.unary_unary(
            f"/{SERVICE}/Get",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        call_browse = channel.unary_stream(
            f"/{SERVICE}/Browse",
            request_serializer=request_class.SerializeToString,
            response_deserializer=reply_class.FromString,
        )
        reply = call_get(request_class(sku="hammer"), timeout=5)
        listed = [item.sku for item in call_browse(request_class(sku="saw", count=2), timeout=5)]
        return {
            "services": services,
            "methods": [(m.name, m.server_streaming) for m in service.methods],
            "file": service.file.name,
            "imports": sorted(d.name for d in service.file.dependencies),
            "item_fields": [f.name for f in get.output_type.fields],
            "updated_type": get.output_type.fields_by_name["updated"].message_type.full_name,
            "browse_output": browse.output_type.full_name,
            "reply": (reply.sku, reply.count, reply.kind),
            "listed": listed,
            "extension_numbers": list(
                database.FindAllExtensionNumbers("google.protobuf.MethodOptions")
            ),
        }


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_grpcio_reflection_client_lists_describes_and_calls_an_rpcfw_server(
    rpcfw_server: rpcfw.Server, version: str
) -> None:
    seen = await asyncio.to_thread(describe_and_call, rpcfw_server.address, version)
    assert seen["services"] == sorted(
        [SERVICE, "grpc.health.v1.Health", V1_SERVICE, V1ALPHA_SERVICE]
    )
    assert seen["methods"] == [("Get", False), ("Browse", True)]
    assert seen["file"] == SERVICE_FILE
    assert seen["imports"] == ["inventory/v1/options.proto", "inventory/v1/types.proto"]
    assert seen["item_fields"] == ["sku", "count", "kind", "updated"]
    assert seen["updated_type"] == "google.protobuf.Timestamp"  # from an import of an import
    assert seen["browse_output"] == "inventory.v1.Item"
    assert seen["reply"] == ("hammer", 7, 1)  # kind: KIND_TOOL
    assert seen["listed"] == ["saw-0", "saw-1"]
    assert EXTENSION in seen["extension_numbers"]


def raw_exchange(address: str, version: str, requests: list[Any]) -> list[Any]:
    """Every request on one reflection stream (v1alpha messages; v1's are the same)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            PATHS[version],
            request_serializer=alpha_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=alpha_pb2.ServerReflectionResponse.FromString,
        )
        return list(call(iter(requests), timeout=5))


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
async def test_unknown_names_get_not_found_error_responses_and_the_stream_goes_on(
    rpcfw_server: rpcfw.Server, version: str
) -> None:
    Request = alpha_pb2.ServerReflectionRequest
    requests = [
        Request(file_containing_symbol="inventory.v1.NoSuchThing"),
        Request(file_by_filename="no/such.proto"),
        Request(
            file_containing_extension=alpha_pb2.ExtensionRequest(
                containing_type="google.protobuf.MethodOptions", extension_number=1
            )
        ),
        Request(all_extension_numbers_of_type="no.such.Message"),
        Request(host="inventory.example"),  # no question asked
        Request(
            file_containing_extension=alpha_pb2.ExtensionRequest(
                containing_type="google.protobuf.MethodOptions", extension_number=EXTENSION
            )
        ),
        Request(all_extension_numbers_of_type="google.protobuf.MethodOptions"),
        Request(file_containing_symbol="inventory.v1.Inventory.Get", host="inventory.example"),
    ]
    responses = await asyncio.to_thread(raw_exchange, rpcfw_server.address, version, requests)
    assert len(responses) == len(requests)
    for response, request in zip(responses, requests, strict=True):
        assert response.original_request == request
    codes = [r.error_response.error_code for r in responses[:5]]
    assert codes == [grpc.StatusCode.NOT_FOUND.value[0]] * 4 + [
        grpc.StatusCode.INVALID_ARGUMENT.value[0]
    ]
    assert all(r.WhichOneof("message_response") == "error_response" for r in responses[:5])
    extension_file = responses[5].file_descriptor_response.file_descriptor_proto[0]
    assert descriptor_pb2.FileDescriptorProto.FromString(extension_file).name == (
        "inventory/v1/options.proto"
    )
    numbers = responses[6].all_extension_numbers_response
    assert numbers.base_type_name == "google.protobuf.MethodOptions"
    assert list(numbers.extension_number) == [EXTENSION]
    last = responses[-1]
    assert last.valid_host == "inventory.example"
    names = [
        descriptor_pb2.FileDescriptorProto.FromString(data).name
        for data in last.file_descriptor_response.file_descriptor_proto
    ]
    assert names[0] == SERVICE_FILE and set(names) == CLOSURE


async def test_symbols_fields_enum_values_and_extensions_are_found(
    rpcfw_server: rpcfw.Server,
) -> None:
    async with rpcfw.Channel(rpcfw_server.address) as channel:
        client = ReflectionClient(channel, timeout=5)
        for symbol, file in [
            ("inventory.v1.Inventory.Browse", SERVICE_FILE),
            ("inventory.v1.GetRequest.sku", SERVICE_FILE),
            ("inventory.v1.Item.Kind", "inventory/v1/types.proto"),
            ("inventory.v1.Item.KIND_TOOL", "inventory/v1/types.proto"),  # C++ scoping
            ("inventory.v1.audit_tag", "inventory/v1/options.proto"),
            ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
            (V1ALPHA_SERVICE, "grpc/reflection/v1alpha/reflection.proto"),
            ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
        ]:
            files = await client.file_containing_symbol(symbol)
            assert files[0].name == file, symbol
        numbers = await client.all_extension_numbers_of_type("google.protobuf.MethodOptions")
        assert numbers == [EXTENSION]
        assert await client.all_extension_numbers_of_type("inventory.v1.Item") == []
        extension = await client.file_containing_extension(
            "google.protobuf.MethodOptions", EXTENSION
        )
        assert extension[0].name == "inventory/v1/options.proto"
        assert [f.name for f in await client.file_by_filename("inventory/v1/types.proto")] == [
            "inventory/v1/types.proto",
            "google/protobuf/timestamp.proto",
        ]


# -- rpcfw's ReflectionClient ---------------------------------------------------------------


async def call_through_reflection(channel: rpcfw.Channel, client: ReflectionClient) -> Any:
    """Describe Inventory over reflection, then call Get with dynamic messages through rpcfw."""
    pool = await client.descriptor_pool([SERVICE])
    get = pool.FindServiceByName(SERVICE).methods_by_name["Get"]
    request_class = message_factory.GetMessageClass(get.input_type)
    reply_class = message_factory.GetMessageClass(get.output_type)
    spec = rpcfw.MethodSpec(
        f"/{SERVICE}/Get", rpcfw.Cardinality.UNARY_UNARY, request_class, reply_class
    )
    return await channel.unary_unary(spec, request_class(sku="wrench"), timeout=5)


@pytest.fixture
async def grpcio_server(inventory_modules: dict[str, ModuleType]) -> AsyncIterator[str]:
    """A grpc.aio server with the Inventory service (protobuf messages, in protobuf's default
    pool, where grpcio-reflection looks) and grpcio-reflection enabled."""
    mod = inventory_modules["protobuf"]

    async def get(request: Any, context: Any) -> Any:
        return mod.Item(sku=request.sku, count=3, kind=1)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Get": grpc.unary_unary_rpc_method_handler(
                get,
                request_deserializer=mod.GetRequest.FromString,
                response_serializer=mod.Item.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    grpc_reflection.enable_server_reflection([SERVICE, grpc_reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_rpcfw_client_reads_a_grpcio_servers_reflection(grpcio_server: str) -> None:
    """grpcio-reflection serves v1alpha only: the client falls back from v1 and keeps it."""
    async with rpcfw.Channel(grpcio_server) as channel:
        client = ReflectionClient(channel, timeout=5)
        assert sorted(await client.list_services()) == [V1ALPHA_SERVICE, SERVICE]
        assert client.version == "v1alpha"
        files = await client.file_containing_symbol(SERVICE)
        assert files[0].name == SERVICE_FILE and {f.name for f in files} == CLOSURE
        assert [f.name for f in await client.file_by_filename("inventory/v1/options.proto")] == [
            "inventory/v1/options.proto",
            "google/protobuf/descriptor.proto",
        ]
        numbers = await client.all_extension_numbers_of_type("google.protobuf.MethodOptions")
        assert EXTENSION in numbers
        extension = await client.file_containing_extension(
            "google.protobuf.MethodOptions", EXTENSION
        )
        assert extension[0].name == "inventory/v1/options.proto"
        with pytest.raises(ReflectionError) as info:
            await client.file_containing_symbol("inventory.v1.NoSuchThing")
        assert info.value.status is rpcfw.Status.NOT_FOUND
        reply = await call_through_reflection(channel, client)
        assert (reply.sku, reply.count, reply.kind) == ("wrench", 3, 1)
        assert client.version == "v1alpha"


async def test_rpcfw_client_on_an_rpcfw_server_speaks_v1(rpcfw_server: rpcfw.Server) -> None:
    async with rpcfw.Channel(rpcfw_server.address) as channel:
        client = ReflectionClient(channel, timeout=5)
        assert client.version is None
        services = await client.list_services()
        assert client.version == "v1"
        assert sorted(services) == sorted(
            [SERVICE, "grpc.health.v1.Health", V1_SERVICE, V1ALPHA_SERVICE]
        )
        reply = await call_through_reflection(channel, client)
        assert (reply.sku, reply.count, reply.kind) == ("wrench", 7, 1)
        pool = await client.descriptor_pool()  # every listed service
        for name in services:
            assert pool.FindServiceByName(name).full_name == name
        with pytest.raises(ReflectionError) as info:
            await client.file_by_filename("no/such.proto")
        assert info.value.status is rpcfw.Status.NOT_FOUND


async def test_rpcfw_client_falls_back_to_v1alpha_on_an_rpcfw_server_without_v1(
    inventory_modules: dict[str, ModuleType],
) -> None:
    service = make_inventory(inventory_modules["betterproto2"])
    _, alpha = reflection_services([service])
    server = rpcfw.Server([service, alpha], health=False)
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            client = ReflectionClient(channel, timeout=5)
            files = await client.file_containing_symbol("inventory.v1.Item")
            assert client.version == "v1alpha"
            assert [f.name for f in files] == [
                "inventory/v1/types.proto",
                "google/protobuf/timestamp.proto",
            ]
    finally:
        await server.stop(grace=1)


class _FileOnlyReflection(v1.ServerReflectionBase):
    """A reflection service that answers with the file asked for and none of its imports."""

    def __init__(self, services: list[Any]) -> None:
        self.index = DescriptorIndex([type(s) for s in services])
        self.asked: list[str] = []

    async def server_reflection_info(
        self, requests: AsyncIterator[Any], context: rpcfw.CallContext
    ) -> AsyncIterator[Any]:
        async for request in requests:
            self.asked.append(request.WhichOneof("message_request"))
            response = answer(self.index, request)
            files = response.file_descriptor_response.file_descriptor_proto
            del files[1:]
            yield response


async def test_rpcfw_client_asks_for_the_imports_a_server_left_out(
    inventory_modules: dict[str, ModuleType],
) -> None:
    service = make_inventory(inventory_modules["protobuf"])
    reflection = _FileOnlyReflection([service])
    server = rpcfw.Server([service, reflection], health=False)
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            client = ReflectionClient(channel, timeout=5)
            files = await client.file_containing_symbol(SERVICE)
            assert files[0].name == SERVICE_FILE and {f.name for f in files} == CLOSURE
            # one question, then each of the four imports by name, on the same call
            assert reflection.asked == ["file_containing_symbol"] + ["file_by_filename"] * 4
            reply = await call_through_reflection(channel, client)
            assert (reply.sku, reply.count, reply.kind) == ("wrench", 7, 1)
    finally:
        await server.stop(grace=1)


async def test_without_reflection_the_client_gets_unimplemented(
    inventory_modules: dict[str, ModuleType],
) -> None:
    server = rpcfw.Server([make_inventory(inventory_modules["protobuf"])])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            client = ReflectionClient(channel, timeout=5)
            with pytest.raises(rpcfw.RpcError) as info:
                await client.list_services()
            assert info.value.status is rpcfw.Status.UNIMPLEMENTED
            assert not isinstance(info.value, ReflectionError)
            assert client.version is None
    finally:
        await server.stop(grace=1)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_reflection_on_anyio_backends(
    backend: str, inventory_modules: dict[str, ModuleType]
) -> None:
    """``Server.serve()`` with reflection and the client, both on the same anyio backend."""

    async def main() -> tuple[str | None, Any]:
        server = rpcfw.Server([make_inventory(inventory_modules["betterproto2"])], reflection=True)
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            async with rpcfw.Channel(f"127.0.0.1:{port}") as channel:
                client = ReflectionClient(channel, timeout=5)
                reply = await call_through_reflection(channel, client)
            group.cancel_scope.cancel()
        return client.version, (reply.sku, reply.count, reply.kind)

    assert anyio.run(main, backend=backend) == ("v1", ("wrench", 7, 1))
