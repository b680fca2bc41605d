"""Generated modules at run time: imports, specs, stubs over a fake channel, and a real call."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rpcfw_codegen import Backend

import rpcfw

from .conftest import PACKAGES


@pytest.fixture(params=list(PACKAGES.values()))
def pkg(request: pytest.FixtureRequest, importable: Path) -> str:
    return str(request.param)


def _mod(pkg: str, name: str) -> ModuleType:
    return importlib.import_module(f"{pkg}.{name}")


class FakeChannel:
    """Records which channel method a stub called, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    async def unary_unary(self, spec: Any, request: Any, **options: Any) -> str:
        self.calls.append(("unary_unary", spec, options))
        return "reply"

    def unary_stream(self, spec: Any, request: Any, **options: Any) -> str:
        self.calls.append(("unary_stream", spec, options))
        return "iterator"

    async def stream_unary(self, spec: Any, requests: Any, **options: Any) -> str:
        self.calls.append(("stream_unary", spec, options))
        return "reply"

    def stream_stream(self, spec: Any, **options: Any) -> str:
        self.calls.append(("stream_stream", spec, options))
        return "bidi"

    def stream_stream_iter(self, spec: Any, requests: Any, **options: Any) -> str:
        self.calls.append(("stream_stream_iter", spec, options))
        return "iterator"


def test_all_modules_import_and_export(pkg: str) -> None:
    for name in [
        "helloworld_rpcfw",
        "echo.v1.echo_rpcfw",
        "keywords_rpcfw",
        "wkt_rpcfw",
        "nopkg_rpcfw",
    ]:
        mod = _mod(pkg, name)
        assert all(hasattr(mod, n) for n in mod.__all__), name
    deep = _mod(pkg, "a.b.c.deep_rpcfw")
    assert {"DeepStub", "DeepBase", "Item", "ItemDetail", "Page", "PageCursor", "Empty"} <= set(
        deep.__all__
    )
    assert deep.DEEP_DETAIL.response_type is deep.ItemDetail
    # files without services get a module too: one import place per .proto
    assert _mod(pkg, "noservice_rpcfw").__all__ == ["Lonely"]


# exports.proto's types: name in the _rpcfw module -> path below the backend's own module
_EXPORTS = {
    "gen_bp2": {n: n for n in ("Level", "Order", "OrderLine", "OrderLineNote", "OrderState")},
    "gen_pb": {
        "Level": "Level",
        "Order": "Order",
        "OrderLine": "Order.Line",
        "OrderLineNote": "Order.Line.Note",
        "OrderState": "Order.State",
    },
}


def test_every_message_and_enum_of_the_file_is_reexported(pkg: str) -> None:
    mod = _mod(pkg, "exports_rpcfw")
    own = _mod(pkg, "edge.exports" if pkg == "gen_bp2" else "exports_pb2")
    for name, path in {**_EXPORTS[pkg], "Unused": "Unused"}.items():
        assert name in mod.__all__
        target: Any = own
        for part in path.split("."):
            target = getattr(target, part)
        assert getattr(mod, name) is target, name  # the backend's own class, not a copy
    assert not [n for n in mod.__all__ if n.endswith("Entry")]  # map entries are not types


def test_both_backends_export_the_same_names(importable: Path) -> None:
    """Switching backends changes no import from a ``_rpcfw`` module."""
    root = importable / PACKAGES[Backend.PROTOBUF]
    modules = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*_rpcfw.py")
    )
    assert "noservice_rpcfw" in modules and "common.v1.types_rpcfw" in modules
    for name in modules:
        exported = [_mod(pkg, name).__all__ for pkg in PACKAGES.values()]
        assert exported[0] == exported[1], name


def test_clashing_message_names_get_aliases(pkg: str) -> None:
    root = _mod(pkg, "nopkg_rpcfw")
    assert root.RootStub.__name__ == "RootStub"  # the stub keeps its name ...
    assert root.RootStub_.__name__ == "RootStub"  # ... the message of that name is aliased
    assert root.ROOT_LOOKUP.request_type is root.Mapping_
    assert root.ROOT_PING.path == "/Root/Ping"


def test_specs(pkg: str) -> None:
    echo = _mod(pkg, "echo.v1.echo_rpcfw")
    spec = echo.ECHO_SERVER_STREAM
    assert isinstance(spec, rpcfw.MethodSpec)
    assert spec.path == "/echo.v1.Echo/ServerStream"
    assert spec.cardinality is rpcfw.Cardinality.UNARY_STREAM
    assert (spec.request_type, spec.response_type) == (echo.EchoRequest, echo.EchoResponse)
    kw = _mod(pkg, "keywords_rpcfw")
    assert kw.MODERN_GET.idempotent and kw.MODERN_PUT.idempotent
    assert not kw.MODERN_INIT.idempotent
    assert kw.MODERN___INIT__.path == "/edge.keywords.Modern/__init__"


async def test_stub_methods_route_to_channel(pkg: str) -> None:
    echo = _mod(pkg, "echo.v1.echo_rpcfw")
    channel = FakeChannel()
    stub = echo.EchoStub(channel)
    req = echo.EchoRequest(message="m")
    assert await stub.unary(req, timeout=2.0) == "reply"
    assert stub.server_stream(req) == "iterator"
    assert await stub.client_stream([req]) == "reply"
    assert stub.bidi() == "bidi"
    assert stub.bidi([req]) == "iterator"
    kinds = [(kind, spec.path.rsplit("/", 1)[1]) for kind, spec, _ in channel.calls]
    assert kinds == [
        ("unary_unary", "Unary"),
        ("unary_stream", "ServerStream"),
        ("stream_unary", "ClientStream"),
        ("stream_stream", "Bidi"),
        ("stream_stream_iter", "Bidi"),
    ]
    assert channel.calls[0][2] == {"timeout": 2.0}


def test_docstrings_from_proto_comments(pkg: str) -> None:
    echo = _mod(pkg, "echo.v1.echo_rpcfw")
    assert echo.EchoStub.__doc__ == "Echo covers all four gRPC call kinds."
    assert echo.EchoBase.unary.__doc__ == "Unary: one request, one reply."
    assert (
        echo.EchoStub.server_stream.__doc__ == "Server streaming: `count` replies to one request."
    )
    kw = _mod(pkg, "keywords_rpcfw")
    assert (
        kw.KeywordsStub.__doc__
        == 'Block comment with """triple quotes""" and a backslash \\ in it.'
    )


def test_keywords_and_clashes_are_escaped(pkg: str) -> None:
    kw = _mod(pkg, "keywords_rpcfw")
    names = {n for n, _ in inspect.getmembers(kw.KeywordsStub, inspect.isfunction)}
    assert {"class_", "import_", "channel_", "print_", "get_http_response", "none"} <= names
    modern = {n for n, _ in inspect.getmembers(kw.ModernStub, inspect.isfunction)}
    assert {"__init___", "say_hello", "say_hello_", "rpcfw_methods", "init"} <= modern
    assert kw.ModernBase.__abstractmethods__ == {
        "legacy",
        "get",
        "put",
        "init",
        "rpcfw_methods",
        "__init___",
        "say_hello",
        "say_hello_",
    }


async def test_deprecated_methods_warn(pkg: str) -> None:
    kw = _mod(pkg, "keywords_rpcfw")
    modern = kw.ModernStub(FakeChannel())
    with pytest.warns(DeprecationWarning, match=r"edge\.keywords\.Modern\.Legacy is deprecated"):
        await modern.legacy(kw.Req())
    await modern.get(kw.Req())  # not deprecated: no warning (warnings are errors here)
    old = kw.KeywordsStub(FakeChannel())
    with pytest.warns(DeprecationWarning, match=r"edge\.keywords\.Keywords is deprecated"):
        await old.class_(kw.Req())


def test_base_maps_paths_to_bound_methods(pkg: str) -> None:
    echo = _mod(pkg, "echo.v1.echo_rpcfw")
    with pytest.raises(TypeError, match="abstract"):
        echo.EchoBase()

    class Impl(echo.EchoBase):  # type: ignore[misc,name-defined]
        async def unary(self, request: Any, context: Any) -> Any: ...
        async def server_stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            yield None

        async def client_stream(self, requests: Any, context: Any) -> Any: ...
        async def bidi(self, requests: Any, context: Any) -> AsyncIterator[Any]:
            yield None

    impl = Impl()
    methods = impl.__rpcfw_methods__()
    assert impl.__rpcfw_service__ == "echo.v1.Echo"
    assert list(methods) == [
        f"/echo.v1.Echo/{m}" for m in ("Unary", "ServerStream", "ClientStream", "Bidi")
    ]
    assert methods["/echo.v1.Echo/Bidi"].implementation == impl.bidi
    assert methods["/echo.v1.Echo/Bidi"].spec is echo.ECHO_BIDI


async def test_real_call_with_wkt_and_nested_types(pkg: str) -> None:
    hello = _mod(pkg, "helloworld_rpcfw")
    deep = _mod(pkg, "a.b.c.deep_rpcfw")

    class Greeter(hello.GreeterBase):  # type: ignore[misc,name-defined]
        async def say_hello(self, request: Any, context: rpcfw.CallContext) -> Any:
            return hello.HelloReply(message=f"hello {request.name}")

    class Deep(deep.DeepBase):  # type: ignore[misc,name-defined]
        async def list_(self, request: Any, context: rpcfw.CallContext) -> AsyncIterator[Any]:
            for i in range(request.size):
                yield deep.Item(id=str(i))

        async def detail(self, request: Any, context: rpcfw.CallContext) -> Any:
            return deep.ItemDetail(note=request.value.decode())

        async def ping(self, request: Any, context: rpcfw.CallContext) -> Any:
            return deep.Empty()

    server = rpcfw.Server([Greeter(), Deep()])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(server.address) as channel:
            reply = await hello.GreeterStub(channel).say_hello(hello.HelloRequest(name="x"))
            assert reply.message == "hello x"
            stub = deep.DeepStub(channel)
            items = [item.id async for item in stub.list_(deep.Page(size=3))]
            assert items == ["0", "1", "2"]
            detail = await stub.detail(deep.PageCursor(value=b"note"))
            assert isinstance(detail, deep.ItemDetail) and detail.note == "note"
            assert isinstance(await stub.ping(deep.Empty()), deep.Empty)
    finally:
        await server.stop(grace=0.1)
