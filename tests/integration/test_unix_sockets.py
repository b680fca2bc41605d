"""Unix domain sockets: rpcfw servers listening on ``unix:`` and ``unix-abstract:`` addresses,
channels dialing them, and grpcio on either side.

Faults injected: a server process killed with SIGKILL leaves its socket file behind (the next
server must replace it); a second server asked to bind a live server's socket path (refused,
the live one serves on); a regular file where the socket should go (refused and not deleted).
Also checked: the socket file is removed on stop (``start``/``stop`` and ``serve()``), the
server sees the client as a unix peer, and the channel on trio over a unix socket.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import grpc
import pytest

import rpcfw
from tests.echo_service import make_echo_service
from tests.integration.test_anyio_server import anyio_echo
from tests.interop.grpc_peer import GrpcEcho, GrpcEchoClient
from tests.needs import need

LIVENESS = 10.0  # generous bound: only a hang trips it

# Platform conditions that are never true in CI (Linux): these skips only apply to a local run on
# another OS, where unix sockets (Windows) or abstract sockets (macOS, BSD) do not exist
pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract sockets are Linux only"
)


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[Path]:
    """A socket path in a fresh folder, short enough for sun_path (108 bytes)."""
    if len(str(tmp_path)) < 80:
        yield tmp_path / "echo.sock"
        return
    folder = tempfile.mkdtemp(prefix="rpcfw-")
    try:
        yield Path(folder) / "echo.sock"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def exists(path: Path) -> bool:
    return os.path.lexists(path)


def peer_recording_echo(echo: ModuleType) -> Any:
    """The Echo service, also recording the ``context.peer`` of each unary call."""
    base: Any = type(make_echo_service(echo, "unix"))

    class PeerEcho(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.peers: list[str] = []

        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            self.peers.append(context.peer)
            return await super().unary(request, context)

    return PeerEcho()


async def requests(echo: ModuleType, *words: str) -> AsyncIterator[Any]:
    for word in words:
        yield echo.EchoRequest(message=word)


async def four_call_kinds(channel: rpcfw.Channel, echo: ModuleType) -> list[Any]:
    stub = echo.EchoStub(channel)
    request = echo.EchoRequest
    unary = await stub.unary(request(message="one"), timeout=LIVENESS)
    streamed = [r.index async for r in stub.server_stream(request(message="s", count=3))]
    client_streamed = await stub.client_stream(requests(echo, "a", "b", "c"))
    async with stub.bidi() as bidi:
        for word in ("x", "y"):
            await bidi.send(request(message=word))
        await bidi.done_writing()
        bidi_replies = [r.message async for r in bidi]
    return [unary.message, streamed, client_streamed.message, bidi_replies]


EXPECTED = ["one", [0, 1, 2], "a,b,c", ["x", "y"]]


async def test_four_call_kinds_over_a_unix_socket(echo: ModuleType, sock_path: Path) -> None:
    service = peer_recording_echo(echo)
    server = rpcfw.Server([service])
    await server.start(f"unix:{sock_path}")
    try:
        assert server.address == f"unix:{sock_path}"
        assert server.port == 0
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        for target in (server.address, f"unix://{sock_path}"):
            async with rpcfw.Channel(target) as channel:
                assert await four_call_kinds(channel, echo) == EXPECTED
        assert service.peers == ["unix:", "unix:"]  # a client's socket has no name
    finally:
        await server.stop(grace=1)


async def test_relative_unix_path_is_bound_absolute(echo_pb: ModuleType, sock_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(sock_path.parent)
    try:
        server = rpcfw.Server([make_echo_service(echo_pb, "rel")])
        await server.start("unix:echo.sock")
        try:
            assert server.address == f"unix:{sock_path}"
            async with rpcfw.Channel("unix:echo.sock") as channel:
                reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="r"))
                assert reply.server_id == "rel"
        finally:
            await server.stop(grace=1)
    finally:
        os.chdir(cwd)
    assert not exists(sock_path)


@linux_only
async def test_four_call_kinds_over_an_abstract_socket(echo_pb: ModuleType) -> None:
    name = f"rpcfw-test-{uuid.uuid4().hex}"
    service = peer_recording_echo(echo_pb)
    server = rpcfw.Server([service])
    await server.start(f"unix-abstract:{name}")
    try:
        assert server.address == f"unix-abstract:{name}"
        async with rpcfw.Channel(server.address) as channel:
            assert await four_call_kinds(channel, echo_pb) == EXPECTED
        assert service.peers == ["unix:"]
        second = rpcfw.Server([])  # the name is taken: refused like a live socket file
        with pytest.raises(OSError, match="address in use") as taken:
            await second.start(server.address)
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        await server.stop(grace=1)


_KILLED_SERVER = """
import asyncio, sys
import rpcfw

async def main():
    server = rpcfw.Server([])
    await server.start(sys.argv[1])
    print("READY", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_stale_socket_of_a_killed_server_is_replaced(
    echo_pb: ModuleType, sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: a server process killed with SIGKILL never removes its socket file."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_SERVER, f"unix:{sock_path}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        with anyio.fail_after(LIVENESS):
            assert (await proc.stdout.readline()).strip() == b"READY"
    finally:
        proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(LIVENESS):
            await proc.wait()
    stale = os.lstat(sock_path)
    assert stat.S_ISSOCK(stale.st_mode)  # left behind, no one listening

    server = rpcfw.Server([make_echo_service(echo_pb, "new")])
    with caplog.at_level(logging.INFO, logger="rpcfw.server"):
        await server.start(f"unix:{sock_path}")
    try:
        assert f"removed the stale socket file {sock_path}" in caplog.text
        async with rpcfw.Channel(server.address) as channel:
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
        assert reply.server_id == "new"
    finally:
        await server.stop(grace=1)


async def test_live_servers_socket_path_is_refused(echo_pb: ModuleType, sock_path: Path) -> None:
    """Fault: a second server told to bind the socket path a running server listens on."""
    live = rpcfw.Server([make_echo_service(echo_pb, "live")])
    await live.start(f"unix:{sock_path}")
    try:
        intruder = rpcfw.Server([make_echo_service(echo_pb, "intruder")])
        with pytest.raises(OSError, match="address in use: a server is listening") as refused:
            await intruder.start(f"unix:{sock_path}")
        assert refused.value.errno == errno.EADDRINUSE
        async with rpcfw.Channel(live.address) as channel:  # the live one serves on
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
        assert reply.server_id == "live"
    finally:
        await live.stop(grace=1)
    assert not exists(sock_path)


@pytest.fixture
def user_file(sock_path: Path) -> Path:
    sock_path.write_text("precious")
    return sock_path


async def test_regular_file_at_the_socket_path_is_refused_and_kept(user_file: Path) -> None:
    """Fault: the path names a user's regular file (a typo, a config path)."""
    with pytest.raises(OSError, match="not a socket") as refused:
        await rpcfw.Server([]).start(f"unix:{user_file}")
    assert refused.value.errno == errno.EADDRINUSE
    with open(user_file) as kept:  # noqa: ASYNC230 (a few bytes, once)
        assert kept.read() == "precious"


async def test_stop_removes_the_socket_file_and_the_channel_goes_idle(
    echo_pb: ModuleType, sock_path: Path
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s")])
    await server.start(f"unix:{sock_path}")
    async with rpcfw.Channel(server.address) as channel:
        await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
        await server.stop(grace=1)
        assert not exists(sock_path)
        with anyio.fail_after(LIVENESS):
            await channel.wait_for_state_change(rpcfw.ConnectivityState.READY)
        with pytest.raises(rpcfw.RpcError) as failed:  # no file: the next dial fails fast
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="again"))
        assert failed.value.status is rpcfw.Status.UNAVAILABLE
        assert f"unix:{sock_path}" in failed.value.message  # the endpoint reads as its path


async def test_grpcio_client_calls_rpcfw_over_unix(echo_pb: ModuleType, sock_path: Path) -> None:
    service = peer_recording_echo(echo_pb)
    server = rpcfw.Server([service])
    await server.start(f"unix:{sock_path}")
    channel = grpc.aio.insecure_channel(f"unix:{sock_path}")
    try:
        client = GrpcEchoClient(channel, echo_pb)
        request = echo_pb.EchoRequest
        unary = await client.unary(request(message="one"), timeout=LIVENESS)
        streamed = [r.index async for r in client.server_stream(request(message="s", count=3))]
        client_streamed = await client.client_stream(
            iter([request(message=w) for w in "abc"]), timeout=LIVENESS
        )
        bidi = [r.message async for r in client.bidi(iter([request(message="x")]))]
        assert [unary.message, streamed, client_streamed.message, bidi] == [
            "one",
            [0, 1, 2],
            "a,b,c",
            ["x"],
        ]
        assert service.peers == ["unix:"]
    finally:
        await channel.close()
        await server.stop(grace=1)


async def test_rpcfw_channel_calls_grpcio_over_unix(echo_pb: ModuleType, sock_path: Path) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([GrpcEcho(echo_pb).handler()])
    server.add_insecure_port(f"unix:{sock_path}")
    await server.start()
    try:
        async with rpcfw.Channel(f"unix://{sock_path}") as channel:
            assert await four_call_kinds(channel, echo_pb) == EXPECTED
    finally:
        await server.stop(None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_channel_and_serve_over_unix_on_anyio_backends(
    backend: str, echo_pb: ModuleType, sock_path: Path
) -> None:
    """``Server.serve()`` on a unix socket and the channel on the same backend (trio's channel
    dials with anyio.connect_unix); cancelling serve() removes the socket file."""

    async def main() -> list[Any]:
        server = rpcfw.Server([anyio_echo(echo_pb)])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, f"unix:{sock_path}")
            with anyio.fail_after(LIVENESS):
                assert (port, server.address) == (0, f"unix:{sock_path}")
                async with rpcfw.Channel(server.address) as channel:
                    result = await four_call_kinds(channel, echo_pb)
            group.cancel_scope.cancel()
        return result

    assert anyio.run(main, backend=backend) == EXPECTED
    assert not sock_path.exists()


@pytest.mark.parametrize("kind", ["path", pytest.param("abstract", marks=linux_only)])
def test_four_call_kinds_over_unix_on_uvloop(
    kind: str, echo_pb: ModuleType, sock_path: Path
) -> None:
    """uvloop's create_unix_connection(path=) cannot dial an abstract name (libuv takes a C
    string): the channel connects its own socket and hands it over."""
    uvloop = need("uvloop", "pip install '.[dev]'")
    address = f"unix:{sock_path}" if kind == "path" else f"unix-abstract:rpcfw-{uuid.uuid4().hex}"

    async def main() -> list[Any]:
        service = peer_recording_echo(echo_pb)
        server = rpcfw.Server([service])
        await server.start(address)
        try:
            async with rpcfw.Channel(server.address) as channel:
                return [*await four_call_kinds(channel, echo_pb), service.peers]
        finally:
            await server.stop(grace=1)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(main()) == [*EXPECTED, ["unix:"]]
    assert not sock_path.exists()
