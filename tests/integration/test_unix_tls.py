"""TLS over Unix domain sockets, with a CA and certificates made at test time (trustme): calls
over TLS on a socket file and an abstract socket (asyncio, uvloop, and the channel on trio),
the name checked (``ChannelTLS(server_name=...)``, else ``localhost``), mTLS with the client's
identity in the handler, a TLS listener added beside a plaintext one.

Faults injected: a certificate for another name than the one checked (UNAVAILABLE with
OpenSSL's reason); a plaintext client on a TLS socket and a TLS client on a plaintext one
(UNAVAILABLE at once; the TLS server logs and counts the failed handshake); a TLS client that
offers no ALPN (closed and counted). Waits are bounded by ``LIVENESS``: only a hang trips it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
import trustme

import rpcfw
from tests.echo_service import make_echo_service, wait_until
from tests.integration.test_tls import Pki, WhoAmI
from tests.needs import need

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)
NAME = "svc.internal"  # the server certificate's only name (no localhost in it)

# never true in CI (Linux): only a local run on another OS skips these
pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract sockets are Linux only"
)

KINDS = ["path", pytest.param("abstract", marks=linux_only)]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(trustme.CA(), tmp_path)


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


def unix_address(kind: str, sock_path: Path) -> str:
    return f"unix:{sock_path}" if kind == "path" else f"unix-abstract:rpcfw-{uuid.uuid4().hex}"


@pytest.fixture
async def servers() -> AsyncIterator[list[rpcfw.Server]]:
    started: list[rpcfw.Server] = []
    yield started
    for server in started:
        await server.stop(0)


async def serve(
    started: list[rpcfw.Server], echo: ModuleType, address: str, tls: Any, *, who: bool = False
) -> rpcfw.Server:
    service = WhoAmI(echo) if who else make_echo_service(echo, "unix-tls")
    server = rpcfw.Server([service])
    await server.start(address, tls=tls)
    started.append(server)
    return server


async def unary(channel: rpcfw.Channel, echo: ModuleType) -> Any:
    async with asyncio.timeout(LIVENESS):
        return await echo.EchoStub(channel).unary(echo.EchoRequest(message="hi"))


async def four_call_kinds(channel: rpcfw.Channel, echo: ModuleType) -> list[Any]:
    stub = echo.EchoStub(channel)
    async with asyncio.timeout(LIVENESS):
        reply = await stub.unary(echo.EchoRequest(message="one"))
        streamed = [r.index async for r in stub.server_stream(echo.EchoRequest(count=3))]
        summed = await stub.client_stream([echo.EchoRequest(message=m) for m in ("a", "b")])
        async with stub.bidi() as bidi:
            await bidi.send(echo.EchoRequest(message="x"))
            await bidi.done_writing()
            replies = [r.message async for r in bidi]
    return [reply.message, streamed, summed.message, replies]


EXPECTED = ["one", [0, 1, 2], "a,b", ["x"]]


@pytest.mark.parametrize("kind", KINDS)
async def test_four_call_kinds_over_tls_on_a_unix_socket(
    kind: str, echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], sock_path: Path
) -> None:
    server = await serve(servers, echo_pb, unix_address(kind, sock_path), pki.server(NAME))
    async with rpcfw.Channel(server.address, tls=pki.channel(server_name=NAME)) as channel:
        assert await four_call_kinds(channel, echo_pb) == EXPECTED
    assert server.stats.tls_handshakes_failed == 0


async def test_without_server_name_a_unix_socket_is_checked_as_localhost(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], sock_path: Path
) -> None:
    """gRPC's :authority for a unix target is ``localhost``: the certificate is checked
    against it when the channel names no server."""
    server = await serve(servers, echo_pb, f"unix:{sock_path}", pki.server("localhost"))
    async with rpcfw.Channel(server.address, tls=pki.channel()) as channel:
        assert (await unary(channel, echo_pb)).message == "hi"
    other = await serve(servers, echo_pb, f"unix:{sock_path}.2", pki.server(NAME))
    async with rpcfw.Channel(other.address, tls=pki.channel()) as channel:
        with pytest.raises(rpcfw.RpcError) as failed:
            await unary(channel, echo_pb)
    assert failed.value.status is rpcfw.Status.UNAVAILABLE
    assert "'localhost'" in str(failed.value), failed.value


@pytest.mark.parametrize("kind", KINDS)
async def test_mtls_on_a_unix_listener_added_beside_tcp(
    kind: str, echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], sock_path: Path
) -> None:
    """``add_listener`` with a unix host and TLS; the handler sees the client certificate."""
    pki.ca.cert_pem.write_to_path(pki.tmp / "ca.pem")
    server = await serve(servers, echo_pb, "127.0.0.1", None, who=True)
    address = unix_address(kind, sock_path)
    tls = pki.server(NAME, client_ca=pki.tmp / "ca.pem", require_client_cert=True)
    assert await server.add_listener(address, tls=tls) == 0
    cert, key = pki.files("client", "client.example", common_name="billing")
    channel_tls = pki.channel(cert_chain=cert, private_key=key, server_name=NAME)
    async with rpcfw.Channel(address, tls=channel_tls) as channel:
        reply = await unary(channel, echo_pb)
    subject, dns, _ = reply.message.split("|")
    assert "CN=billing" in subject and dns == "client.example"
    async with rpcfw.Channel(server.address) as plain:  # the TCP listener is still plaintext
        assert (await unary(plain, echo_pb)).message.startswith("anonymous|")
    async with rpcfw.Channel(address, tls=pki.channel(server_name=NAME)) as anonymous:
        with pytest.raises(rpcfw.RpcError) as refused:  # fault: no client certificate
            await unary(anonymous, echo_pb)
    assert refused.value.status is rpcfw.Status.UNAVAILABLE
    await wait_until(lambda: server.stats.tls_handshakes_failed == 1, LIVENESS)


async def test_wrong_server_name_fails_unavailable_with_the_tls_reason(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], sock_path: Path
) -> None:
    """Fault: the channel checks a name the certificate does not have."""
    server = await serve(servers, echo_pb, f"unix:{sock_path}", pki.server(NAME))
    tls = pki.channel(server_name="other.internal")
    async with rpcfw.Channel(server.address, tls=tls) as channel:
        with pytest.raises(rpcfw.RpcError) as failed:
            await unary(channel, echo_pb)
    assert failed.value.status is rpcfw.Status.UNAVAILABLE
    message = str(failed.value)
    assert "certificate verify failed" in message and "other.internal" in message, message


@pytest.mark.parametrize("kind", KINDS)
async def test_plaintext_client_on_a_tls_unix_socket_and_the_reverse_fail_fast(
    kind: str,
    echo_pb: ModuleType,
    pki: Pki,
    servers: list[rpcfw.Server],
    sock_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Faults: the two mix-ups. Each call fails UNAVAILABLE at once (the plaintext client is
    told the socket may want TLS); the TLS server logs and counts the failed handshake."""
    caplog.set_level(logging.WARNING, logger="rpcfw.server")
    secure = await serve(servers, echo_pb, unix_address(kind, sock_path), pki.server(NAME))
    plain_address = unix_address(kind, sock_path.with_name("plain.sock"))
    plain = await serve(servers, echo_pb, plain_address, None)
    async with rpcfw.Channel(secure.address) as channel:
        with pytest.raises(rpcfw.RpcError) as cleartext:
            await unary(channel, echo_pb)
    async with rpcfw.Channel(plain.address, tls=pki.channel(server_name=NAME)) as channel:
        with pytest.raises(rpcfw.RpcError) as encrypted:
            await unary(channel, echo_pb)
    assert cleartext.value.status is encrypted.value.status is rpcfw.Status.UNAVAILABLE
    assert "is it a TLS socket (pass tls=)?" in str(cleartext.value), cleartext.value
    await wait_until(lambda: secure.stats.tls_handshakes_failed == 1, LIVENESS)
    assert any(r.getMessage().startswith("TLS handshake with unix") for r in caplog.records), (
        caplog.records
    )


async def test_tls_client_without_alpn_h2_on_a_unix_socket_is_refused_and_counted(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], sock_path: Path
) -> None:
    """Fault: a TLS client that offers no ALPN (HTTP/1.1 style)."""
    server = await serve(servers, echo_pb, f"unix:{sock_path}", pki.server(NAME))
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.bytes().decode())
    async with asyncio.timeout(LIVENESS):
        reader, writer = await asyncio.open_unix_connection(
            str(sock_path), ssl=context, server_hostname=NAME
        )
        try:
            assert await reader.read() == b""  # the server closes it
        finally:
            writer.close()
    await wait_until(lambda: server.stats.tls_handshakes_failed == 1, LIVENESS)


async def test_server_without_alpn_h2_is_refused_and_the_connection_closed(
    echo_pb: ModuleType, pki: Pki, sock_path: Path
) -> None:
    """Fault: a TLS server on the socket that chooses no ALPN (not gRPC). The call fails
    UNAVAILABLE naming ALPN, and the channel closes the connection it refused."""
    cert, key = pki.files("server", NAME)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)  # no set_alpn_protocols: the server selects none
    closed: asyncio.Queue[str] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
            await closed.put("eof")
        except OSError as exc:  # the client aborted: a reset
            await closed.put(type(exc).__name__)
        finally:
            writer.close()

    listener = await asyncio.start_unix_server(handle, str(sock_path), ssl=context)
    try:
        async with rpcfw.Channel(f"unix:{sock_path}", tls=pki.channel(server_name=NAME)) as ch:
            with pytest.raises(rpcfw.RpcError) as failed:
                await unary(ch, echo_pb)
            async with asyncio.timeout(LIVENESS):
                assert await closed.get()  # the refused connection, before the channel closed
    finally:
        listener.close()
        await listener.wait_closed()
    assert failed.value.status is rpcfw.Status.UNAVAILABLE
    assert "did not negotiate ALPN h2" in str(failed.value), failed.value


def _asyncio_server_in_a_thread(echo: ModuleType, address: str, tls: rpcfw.ServerTLS) -> Any:
    """An asyncio TLS server on its own loop and thread (``Server.serve()`` has no TLS yet):
    a context manager that yields once it listens."""

    class Running:
        def __enter__(self) -> None:
            self.started, self.stop = threading.Event(), asyncio.Event()
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.run(),))
            self.thread.start()
            assert self.started.wait(LIVENESS)

        async def run(self) -> None:
            server = rpcfw.Server([make_echo_service(echo, "unix-tls")])
            await server.start(address, tls=tls)
            try:
                self.started.set()
                await self.stop.wait()
            finally:
                await server.stop(0)

        def __exit__(self, *exc: object) -> None:
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(LIVENESS)
            assert not self.thread.is_alive()
            self.loop.close()

    return Running()


@pytest.mark.parametrize("kind", KINDS)
def test_trio_channel_over_tls_on_a_unix_socket(
    kind: str, echo_pb: ModuleType, pki: Pki, sock_path: Path
) -> None:
    """The anyio runtime wraps its unix stream in anyio's TLS stream (ALPN h2 checked); a
    wrong name fails the same way as on asyncio."""
    address = unix_address(kind, sock_path)
    results: list[Any] = []

    async def main() -> None:
        with anyio.fail_after(LIVENESS):
            async with rpcfw.Channel(address, tls=pki.channel(server_name=NAME)) as channel:
                reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="trio"))
                results.append(reply.message)
            async with rpcfw.Channel(address, tls=pki.channel(server_name="no.such")) as wrong:
                try:
                    await echo_pb.EchoStub(wrong).unary(echo_pb.EchoRequest(message="x"))
                except rpcfw.RpcError as exc:
                    results.append((exc.status, "certificate verify failed" in str(exc)))

    with _asyncio_server_in_a_thread(echo_pb, address, pki.server(NAME)):
        anyio.run(main, backend="trio")
    assert results == ["trio", (rpcfw.Status.UNAVAILABLE, True)]


@pytest.mark.parametrize("kind", KINDS)
def test_tls_over_unix_on_uvloop(kind: str, echo_pb: ModuleType, pki: Pki, sock_path: Path) -> None:
    """On uvloop the loop runs the server's handshake (``create_unix_server(ssl=...)``) and
    ``AlpnGate`` checks h2; the channel hands its own connected socket to
    ``create_unix_connection(sock=, ssl=...)``. A plaintext client fails clearly (uvloop drops
    the failed handshake unseen: not counted there)."""
    uvloop = need("uvloop", "pip install '.[dev]'")
    address = unix_address(kind, sock_path)

    async def main() -> list[Any]:
        server = rpcfw.Server([make_echo_service(echo_pb, "uvloop")])
        await server.start(address, tls=pki.server(NAME))
        try:
            async with rpcfw.Channel(server.address, tls=pki.channel(server_name=NAME)) as ch:
                result = await four_call_kinds(ch, echo_pb)
            async with rpcfw.Channel(server.address) as plain:
                with pytest.raises(rpcfw.RpcError) as cleartext:
                    await unary(plain, echo_pb)
            return [*result, cleartext.value.status]
        finally:
            await server.stop(0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(main()) == [*EXPECTED, rpcfw.Status.UNAVAILABLE]
    assert not sock_path.exists()


def test_name_checked_for_a_unix_endpoint() -> None:
    """``server_name`` wins; else an endpoint's ``server_name`` attribute; else ``localhost``
    for a unix socket (never the ``unix:`` host itself), the host for a network one."""
    default, named = rpcfw.ChannelTLS(), rpcfw.ChannelTLS(server_name=NAME)
    assert default.name_for("unix:/run/a.sock") == "localhost"
    assert default.name_for("unix-abstract:a") == "localhost"
    assert default.name_for("unix:/run/a.sock", {"server_name": "x.internal"}) == "x.internal"
    assert named.name_for("unix:/run/a.sock") == NAME
    assert default.name_for("api.example.com") == "api.example.com"
