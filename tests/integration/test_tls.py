"""TLS and mTLS between rpcfw servers and channels, with a CA and certificates made at test
time (trustme): calls over TLS, name checks per endpoint, client certificates and the identity
a handler sees, certificate reload, plaintext and TLS ports on one server, call credentials,
and each way a handshake can fail (each a clear UNAVAILABLE on the client, a logged and counted
failure on the server, nothing hangs)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
import trustme

import rpcfw
from tests.echo_service import make_echo_service, wait_until

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)


@dataclass
class Pki:
    ca: trustme.CA
    tmp: Path

    def server(self, *names: str, **options: Any) -> rpcfw.ServerTLS:
        cert, key = self.files("server", *names)
        return rpcfw.ServerTLS(cert, key, **options)

    def files(
        self, stem: str, *names: str, ca: trustme.CA | None = None, **kw: Any
    ) -> tuple[Path, Path]:
        leaf = (ca or self.ca).issue_cert(*(names or ("localhost", "127.0.0.1")), **kw)
        cert, key = self.tmp / f"{stem}.crt", self.tmp / f"{stem}.key"
        for index, pem in enumerate(leaf.cert_chain_pems):
            if index == 0:
                pem.write_to_path(cert)
            else:
                pem.write_to_path(cert, append=True)
        leaf.private_key_pem.write_to_path(key)
        return cert, key

    def channel(self, **options: Any) -> rpcfw.ChannelTLS:
        return rpcfw.ChannelTLS(self.ca.cert_pem.bytes(), **options)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(trustme.CA(), tmp_path)


class WhoAmI:
    """Echo whose unary reply says who the client is (its certificate) and its token."""

    def __new__(cls, echo: ModuleType) -> Any:
        base: Any = type(make_echo_service(echo, "tls"))

        class Service(base):  # type: ignore[misc,valid-type]
            async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
                identity = context.peer_identity
                token = context.invocation_metadata.get("authorization")
                who = "anonymous" if identity is None else identity.subject
                return echo.EchoResponse(
                    message=f"{who}|{','.join(identity.dns_names) if identity else ''}|{token}"
                )

        return Service()


@pytest.fixture
async def servers() -> AsyncIterator[list[rpcfw.Server]]:
    started: list[rpcfw.Server] = []
    yield started
    for server in started:
        await server.stop(0)


async def serve(
    started: list[rpcfw.Server], echo: ModuleType, tls: Any, *, who: bool = False
) -> rpcfw.Server:
    service = WhoAmI(echo) if who else make_echo_service(echo, "tls")
    server = rpcfw.Server([service])
    await server.start("127.0.0.1", 0, tls=tls)
    started.append(server)
    return server


async def unary(channel: rpcfw.Channel, echo: ModuleType, **options: Any) -> Any:
    async with asyncio.timeout(LIVENESS):
        return await echo.EchoStub(channel).unary(echo.EchoRequest(message="hi"), **options)


async def test_four_call_kinds_over_tls(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    server = await serve(servers, echo_pb, pki.server())
    async with rpcfw.Channel(server.address, tls=pki.channel()) as channel:
        stub = echo_pb.EchoStub(channel)
        async with asyncio.timeout(LIVENESS):
            reply = await stub.unary(echo_pb.EchoRequest(message="one"))
            streamed = [r.index async for r in stub.server_stream(echo_pb.EchoRequest(count=3))]
            summed = await stub.client_stream([echo_pb.EchoRequest(message=m) for m in ("a", "b")])
            async with stub.bidi() as bidi:
                await bidi.send(echo_pb.EchoRequest(message="x"))
                await bidi.done_writing()
                replies = [r.message async for r in bidi]
    assert [reply.message, streamed, summed.message, replies] == ["one", [0, 1, 2], "a,b", ["x"]]
    assert server.stats.tls_handshakes_failed == 0


async def test_mtls_handler_sees_the_client_certificate_identity(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    cert, key = pki.files("client", "client.example", common_name="billing")
    pki.ca.cert_pem.write_to_path(pki.tmp / "ca.pem")
    tls = pki.server(client_ca=pki.tmp / "ca.pem", require_client_cert=True)
    server = await serve(servers, echo_pb, tls, who=True)
    channel_tls = pki.channel(cert_chain=cert, private_key=key)
    async with rpcfw.Channel(server.address, tls=channel_tls) as channel:
        reply = await unary(channel, echo_pb)
    subject, dns, _ = reply.message.split("|")
    assert "CN=billing" in subject and dns == "client.example"


@pytest.mark.parametrize(
    "fault",
    ["no client certificate", "client certificate from another CA", "expired client certificate"],
)
async def test_mtls_refuses_bad_client_certificates_clearly(
    echo_pb: ModuleType,
    pki: Pki,
    servers: list[rpcfw.Server],
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: as named. The client fails UNAVAILABLE (fast, no hang); the server logs and
    counts one failed handshake and serves on."""
    pki.ca.cert_pem.write_to_path(pki.tmp / "ca.pem")
    server = await serve(
        servers, echo_pb, pki.server(client_ca=pki.tmp / "ca.pem", require_client_cert=True)
    )
    options: dict[str, Any] = {}
    if fault == "client certificate from another CA":
        cert, key = pki.files("client", "client.example", ca=trustme.CA())
        options = {"cert_chain": cert, "private_key": key}
    elif fault == "expired client certificate":
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        cert, key = pki.files(
            "client",
            "client.example",
            not_before=past - datetime.timedelta(days=30),
            not_after=past,
        )
        options = {"cert_chain": cert, "private_key": key}
    caplog.set_level(logging.WARNING, logger="rpcfw.server")
    async with rpcfw.Channel(server.address, tls=pki.channel(**options)) as channel:
        with pytest.raises(rpcfw.RpcError) as failed:
            await unary(channel, echo_pb)
    assert failed.value.status is rpcfw.Status.UNAVAILABLE
    await wait_until(lambda: server.stats.tls_handshakes_failed >= 1, LIVENESS)
    assert any("TLS handshake with" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("server certificate for another name", "match"),
        ("server certificate from an untrusted CA", "certificate verify failed"),
        ("expired server certificate", "expired"),
    ],
)
async def test_channel_refuses_bad_server_certificates_with_the_tls_reason(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], fault: str, reason: str
) -> None:
    if fault == "server certificate for another name":
        cert, key = pki.files("server", "elsewhere.example")
    elif fault == "server certificate from an untrusted CA":
        cert, key = pki.files("server", "localhost", "127.0.0.1", ca=trustme.CA())
    else:
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        cert, key = pki.files(
            "server", "127.0.0.1", not_before=past - datetime.timedelta(days=30), not_after=past
        )
    server = await serve(servers, echo_pb, rpcfw.ServerTLS(cert, key))
    async with rpcfw.Channel(server.address, tls=pki.channel()) as channel:
        with pytest.raises(rpcfw.RpcError) as failed:
            await unary(channel, echo_pb)
    assert failed.value.status is rpcfw.Status.UNAVAILABLE
    assert reason in str(failed.value), failed.value


async def test_server_name_override_checks_the_certificate_against_that_name(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    cert, key = pki.files("server", "api.internal")  # no IP in it
    server = await serve(servers, echo_pb, rpcfw.ServerTLS(cert, key))
    tls = pki.channel(server_name="api.internal")
    async with rpcfw.Channel(server.address, tls=tls) as channel:
        assert (await unary(channel, echo_pb)).message == "hi"


async def test_balanced_channel_checks_each_endpoint_by_its_own_name(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    """static:/// with a name and an IP (each certificate has only its own), then dns:///
    (the certificate has only the name: TLS checks the name, not the resolved IP)."""
    by_name = await serve(servers, echo_pb, pki.server("localhost"))
    by_ip = await serve(servers, echo_pb, pki.server("127.0.0.1"))
    target = f"static:///localhost:{by_name.port},127.0.0.1:{by_ip.port}"
    async with rpcfw.Channel(
        target, tls=pki.channel(), balancer="round_robin", wait_for_ready=True
    ) as channel:
        for _ in range(4):
            await unary(channel, echo_pb)
    async with rpcfw.Channel(f"dns:///localhost:{by_name.port}", tls=pki.channel()) as channel:
        assert (await unary(channel, echo_pb, wait_for_ready=True)).message == "hi"


async def test_plaintext_and_tls_ports_of_one_server(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    server = await serve(servers, echo_pb, pki.server())
    plain_port = await server.add_listener("127.0.0.1", 0)
    async with (
        rpcfw.Channel(server.address, tls=pki.channel()) as secure,
        rpcfw.Channel(f"127.0.0.1:{plain_port}") as plain,
    ):
        assert (await unary(secure, echo_pb)).message == (await unary(plain, echo_pb)).message


async def test_plaintext_client_on_a_tls_port_and_tls_client_on_a_plaintext_port_fail_fast(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    """Faults: the two mix-ups. Each call fails UNAVAILABLE at once; the TLS server counts
    the plaintext client's failed handshake."""
    secure = await serve(servers, echo_pb, pki.server())
    plain = await serve(servers, echo_pb, None)
    async with rpcfw.Channel(secure.address) as channel:
        with pytest.raises(rpcfw.RpcError) as cleartext:
            await unary(channel, echo_pb)
    async with rpcfw.Channel(plain.address, tls=pki.channel()) as channel:
        with pytest.raises(rpcfw.RpcError) as encrypted:
            await unary(channel, echo_pb)
    assert cleartext.value.status is encrypted.value.status is rpcfw.Status.UNAVAILABLE
    await wait_until(lambda: secure.stats.tls_handshakes_failed == 1, LIVENESS)


async def test_tls_client_without_alpn_h2_is_refused_and_counted(
    pki: Pki, echo_pb: ModuleType, servers: list[rpcfw.Server]
) -> None:
    """Fault: a TLS client that offers no ALPN (HTTP/1.1 style)."""
    server = await serve(servers, echo_pb, pki.server())
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.bytes().decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
    try:
        async with asyncio.timeout(LIVENESS):
            assert await reader.read() == b""  # the server closes it
    finally:
        writer.close()
    await wait_until(lambda: server.stats.tls_handshakes_failed == 1, LIVENESS)


async def test_renewed_key_pair_is_used_for_new_connections_without_restart(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    cert, key = pki.files("server", "localhost", "127.0.0.1", common_name="first")
    tls = rpcfw.ServerTLS(cert, key, reload_interval=0)
    server = await serve(servers, echo_pb, tls)
    assert await served_common_name(pki, server.port) == "first"
    async with rpcfw.Channel(server.address, tls=pki.channel()) as old:
        await unary(old, echo_pb)
        pki.files("server", "localhost", "127.0.0.1", common_name="second")  # renewed in place
        assert await served_common_name(pki, server.port) == "second"
        await unary(old, echo_pb)  # the connection made before goes on
    assert tls.reloads == 1


async def test_broken_renewal_keeps_the_current_key_pair(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server], caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: the renewed key file does not match the certificate."""
    cert, key = pki.files("server", "localhost", "127.0.0.1", common_name="first")
    tls = rpcfw.ServerTLS(cert, key, reload_interval=0)
    server = await serve(servers, echo_pb, tls)
    other = pki.ca.issue_cert("127.0.0.1")
    other.cert_chain_pems[0].write_to_path(cert)  # a new certificate, the old key
    assert await served_common_name(pki, server.port) == "first"
    assert tls.reloads == 0 and any("reload failed" in r.getMessage() for r in caplog.records)


async def served_common_name(pki: Pki, port: int | None) -> str:
    context = ssl.create_default_context(cadata=pki.ca.cert_pem.bytes().decode())
    context.set_alpn_protocols(["h2"])
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        cert = writer.get_extra_info("ssl_object").getpeercert()
        names = dict(rdn[0] for rdn in cert["subject"])
        return str(names["commonName"])
    finally:
        writer.close()


async def test_call_credentials_over_tls_and_refused_over_plaintext(
    echo_pb: ModuleType, pki: Pki, servers: list[rpcfw.Server]
) -> None:
    server = await serve(servers, echo_pb, pki.server(), who=True)

    async def bearer(method: str) -> dict[str, str]:
        return {"authorization": f"Bearer for {method}"}

    async with rpcfw.Channel(server.address, tls=pki.channel(), call_credentials=bearer) as ch:
        reply = await unary(ch, echo_pb)
    assert reply.message.endswith("|Bearer for /echo.v1.Echo/Unary")
    with pytest.raises(ValueError, match="need a TLS channel"):
        rpcfw.Channel("127.0.0.1:1", call_credentials=bearer)
    plain = await serve(servers, echo_pb, None, who=True)
    async with rpcfw.Channel(
        plain.address, call_credentials=bearer, allow_insecure_call_credentials=True
    ) as channel:
        assert (await unary(channel, echo_pb)).message.endswith("Unary")
    async with rpcfw.Channel(plain.address) as channel:
        with pytest.raises(ValueError, match="need a TLS channel"):
            await unary(channel, echo_pb, call_credentials=bearer)


def test_trio_channel_over_tls(echo_pb: ModuleType, pki: Pki) -> None:
    """The anyio runtime dials TLS itself (anyio's TLS stream, ALPN h2 checked)."""
    results: list[str] = []

    async def main() -> None:
        async with rpcfw.Channel(f"127.0.0.1:{port}", tls=pki.channel()) as channel:
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="trio"))
            results.append(reply.message)

    async def run_server() -> None:
        nonlocal port
        server = rpcfw.Server([make_echo_service(echo_pb, "tls")])
        await server.start("127.0.0.1", 0, tls=pki.server())
        port = server.port or 0
        started.set()
        await stop.wait()
        await server.stop(0)

    import threading

    port = 0
    started, stop = threading.Event(), asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run_server(),))
    thread.start()
    try:
        assert started.wait(LIVENESS)
        anyio.run(main, backend="trio")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(LIVENESS)
        loop.close()
    assert results == ["trio"]
