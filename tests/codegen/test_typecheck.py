"""mypy --strict over generated code (both backends, edge-case protos included), a consumer
using every call shape, and misuse that must be rejected; plus ruff over the service modules.

One mypy run covers everything (it is the slow part: ~10-20 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PACKAGES, REPO

CONSUMER = '''\
"""Every generated shape, used correctly."""

import asyncio
from collections.abc import AsyncIterator
from typing import assert_type

import rpcfw

from {pkg}.a.b.c.deep_rpcfw import DeepStub, ItemDetail, PageCursor
from {pkg}.common.v1.types_rpcfw import Color, Rich
from {pkg}.echo.v1.echo_rpcfw import (
    ECHO_SERVER_STREAM,
    ECHO_UNARY,
    EchoBase,
    EchoRequest,
    EchoResponse,
    EchoStub,
)
from {pkg}.exports_rpcfw import (
    Level,
    Order,
    OrderLine,
    OrderLineNote,
    OrderState,
    OrdersStub,
    Unused,
)
from {pkg}.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest
from {pkg}.keywords_rpcfw import KeywordsStub, ModernBase, Req, Resp
from {pkg}.wkt_rpcfw import Any as AnyMessage, ClockStub, Empty, Struct, Timestamp


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message="hi " + request.name)


class Echo(EchoBase):
    async def unary(self, request: EchoRequest, context: rpcfw.CallContext) -> EchoResponse:
        return EchoResponse(message=request.message)

    async def server_stream(
        self, request: EchoRequest, context: rpcfw.CallContext
    ) -> AsyncIterator[EchoResponse]:
        for i in range(request.count):
            yield EchoResponse(message=request.message, index=i)

    async def client_stream(
        self, requests: AsyncIterator[EchoRequest], context: rpcfw.CallContext
    ) -> EchoResponse:
        return EchoResponse(message="".join([r.message async for r in requests]))

    async def bidi(
        self, requests: AsyncIterator[EchoRequest], context: rpcfw.CallContext
    ) -> AsyncIterator[EchoResponse]:
        async for r in requests:
            yield EchoResponse(message=r.message)


class Modern(ModernBase):
    async def legacy(self, request: Req, context: rpcfw.CallContext) -> Resp:
        return Resp()

    get = put = init = rpcfw_methods = __init___ = say_hello = say_hello_ = legacy


async def client(channel: rpcfw.Channel) -> list[str]:
    reply = await GreeterStub(channel).say_hello(HelloRequest(name="x"), timeout=1.0)
    assert_type(reply, HelloReply)
    echo = EchoStub(channel)
    out = [reply.message]
    r1 = await echo.unary(EchoRequest(message="a"), metadata={{"k": "v"}}, hash_key="k")
    assert_type(r1, EchoResponse)
    async for r in echo.server_stream(EchoRequest(count=2)):
        out.append(r.message)
    r2 = await echo.client_stream([EchoRequest(message="a")], wait_for_ready=True)
    out.append(r2.message)
    assert_type(await asyncio.create_task(echo.client_stream([])), EchoResponse)
    async with echo.client_stream(timeout=1.0) as upload:
        assert_type(upload, rpcfw.ClientStreamCall[EchoRequest, EchoResponse])
        await upload.send(EchoRequest(message="c"))
        assert_type(await upload.response(), EchoResponse)
        assert_type(await upload, EchoResponse)
        assert_type(upload.status, rpcfw.Status | None)
    unary_call = channel.unary_call(ECHO_UNARY, EchoRequest(message="d"))
    assert_type(unary_call, rpcfw.UnaryCall[EchoResponse])
    assert_type(await unary_call, EchoResponse)
    assert_type(unary_call.trailing_metadata, rpcfw.Metadata | None)
    assert_type(await unary_call.wait_initial_metadata(), rpcfw.Metadata)
    assert_type(unary_call.cancel(), bool)
    listing = channel.server_stream_call(ECHO_SERVER_STREAM, EchoRequest(count=1))
    async for r in listing:
        assert_type(r, EchoResponse)
    assert_type(listing.peer, str | None)
    async with echo.bidi() as stream:
        assert_type(stream, rpcfw.BidiStream[EchoRequest, EchoResponse])
        await stream.send(EchoRequest(message="b"))
        await stream.done_writing()
        async for r in stream:
            out.append(r.message)
    assert_type(echo.bidi([EchoRequest()]), AsyncIterator[EchoResponse])
    spec: rpcfw.MethodSpec[EchoRequest, EchoResponse] = ECHO_UNARY
    out.append(spec.path)
    services: list[rpcfw.ServiceBase] = [Greeter(), Echo(), Modern()]
    out += [path for s in services for path in s.__rpcfw_methods__()]
    assert_type(await KeywordsStub(channel).class_(Req()), Resp)
    assert_type(await ClockStub(channel).now(Empty()), Timestamp)
    assert_type(await ClockStub(channel).pack(Struct()), AnyMessage)
    assert_type(await DeepStub(channel).detail(PageCursor()), ItemDetail)
    # every type of a file is importable from its _rpcfw module, nested ones flat
    order = Order(lines=[OrderLine(sku="a", note=OrderLineNote(text="n"))], count=1)
    assert_type(await OrdersStub(channel).place(order), OrderLine)
    out += [repr(x) for x in (Level, OrderState, Unused(), Color, Rich())]
    return out
'''

MISUSE = """\
import rpcfw

from {pkg}.echo.v1.echo_rpcfw import EchoBase, EchoRequest, EchoResponse, EchoStub
from {pkg}.helloworld_rpcfw import GreeterStub, HelloReply


async def wrong_request(channel: rpcfw.Channel) -> None:
    await GreeterStub(channel).say_hello(HelloReply(message="x"))  # line 8


async def wrong_option(channel: rpcfw.Channel) -> None:
    await EchoStub(channel).unary(EchoRequest(), retries=3)  # line 12


class Half(EchoBase):
    async def unary(self, request: EchoRequest, context: rpcfw.CallContext) -> EchoResponse:
        return EchoResponse()


half = Half()  # line 20
"""

MYPY_INI = """\
[mypy]
strict = True
python_version = 3.11
warn_unreachable = True

[mypy-rpcfw.*]
# the runtime is checked by its own tests; here it plays an installed library
ignore_errors = True

[mypy-grpclib.*,h2.*,hyperframe.*,hpack.*,multidict.*]
ignore_missing_imports = True
"""


@pytest.fixture(scope="module")
def mypy_output(gen_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    targets = []
    for pkg in PACKAGES.values():
        (gen_root / f"use_{pkg}.py").write_text(CONSUMER.format(pkg=pkg))
        (gen_root / f"misuse_{pkg}.py").write_text(MISUSE.format(pkg=pkg))
        targets += [pkg, f"use_{pkg}.py", f"misuse_{pkg}.py"]
    (gen_root / "mypy.ini").write_text(MYPY_INI)
    cache = tmp_path_factory.mktemp("mypy_cache")
    env = {**os.environ, "MYPYPATH": str(REPO)}
    options = ["--config-file", "mypy.ini", "--cache-dir", str(cache), "--no-error-summary"]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *options, "--show-error-codes", *targets],
        cwd=gen_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return [line for line in proc.stdout.splitlines() if ": error:" in line]


@pytest.mark.parametrize("pkg", PACKAGES.values())
def test_generated_code_and_consumer_are_strict_clean(mypy_output: list[str], pkg: str) -> None:
    unexpected = [line for line in mypy_output if not line.startswith(f"misuse_{pkg}.py")]
    assert not [line for line in unexpected if pkg in line.split(":")[0]], "\n".join(unexpected)


@pytest.mark.parametrize("pkg", PACKAGES.values())
def test_wrong_request_type_is_rejected(mypy_output: list[str], pkg: str) -> None:
    errors = [line for line in mypy_output if line.startswith(f"misuse_{pkg}.py:8:")]
    assert errors and 'incompatible type "HelloReply"; expected "HelloRequest"' in errors[0]


@pytest.mark.parametrize("pkg", PACKAGES.values())
def test_unknown_call_option_is_rejected(mypy_output: list[str], pkg: str) -> None:
    errors = [line for line in mypy_output if line.startswith(f"misuse_{pkg}.py:12:")]
    assert errors and 'Unexpected keyword argument "retries"' in errors[0]


@pytest.mark.parametrize("pkg", PACKAGES.values())
def test_missing_override_is_rejected(mypy_output: list[str], pkg: str) -> None:
    errors = [line for line in mypy_output if line.startswith(f"misuse_{pkg}.py:20:")]
    assert errors and 'Cannot instantiate abstract class "Half"' in errors[0]
    assert '"bidi", "client_stream" and "server_stream"' in errors[0]


def test_service_modules_are_ruff_clean(gen_root: Path) -> None:
    """Run where a user's project would: outside this repo, so ``rpcfw`` is third-party."""
    modules = sorted(str(p.relative_to(gen_root)) for p in gen_root.rglob("*_rpcfw.py"))
    isolated = [sys.executable, "-m", "ruff", "--quiet"]
    rules = "E,F,W,I,B,UP,RUF,SIM,ASYNC"
    lint = subprocess.run(
        [
            *isolated,
            "check",
            "--isolated",
            "--select",
            rules,
            "--target-version",
            "py311",
            *modules,
        ],
        cwd=gen_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [*isolated, "format", "--isolated", "--check", "--diff", *modules],
        cwd=gen_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
