"""TLS and mTLS with grpcio as the peer, both directions (certificates made at test time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import trustme

import rpcfw
from tests.echo_service import make_echo_service

from .grpc_peer import GrpcEcho, GrpcEchoClient

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)


class Certs:
    def __init__(self, tmp: Path) -> None:
        self.ca = trustme.CA()
        self.tmp = tmp
        self.server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.client = self.ca.issue_cert("client.example", common_name="grpcio-or-rpcfw")
        self.ca_path = self.write("ca.pem", self.ca.cert_pem.bytes())

    def write(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def files(self, leaf: trustme.LeafCert, stem: str) -> tuple[Path, Path]:
        chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
        return self.write(f"{stem}.crt", chain), self.write(
            f"{stem}.key", leaf.private_key_pem.bytes()
        )

    def grpc_pair(self, leaf: trustme.LeafCert) -> tuple[bytes, bytes]:
        return leaf.private_key_pem.bytes(), b"".join(p.bytes() for p in leaf.cert_chain_pems)


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
async def test_rpcfw_channel_calls_a_grpcio_tls_server(
    echo_pb: ModuleType, certs: Certs, mtls: bool
) -> None:
    credentials = grpc.ssl_server_credentials(
        [certs.grpc_pair(certs.server)],
        root_certificates=certs.ca.cert_pem.bytes() if mtls else None,
        require_client_auth=mtls,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([GrpcEcho(echo_pb).handler()])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    options: dict[str, Any] = {}
    if mtls:
        cert, key = certs.files(certs.client, "client")
        options = {"cert_chain": cert, "private_key": key}
    try:
        tls = rpcfw.ChannelTLS(certs.ca.cert_pem.bytes(), **options)
        async with (
            rpcfw.Channel(f"localhost:{port}", tls=tls) as channel,
            asyncio.timeout(LIVENESS),
        ):
            stub = echo_pb.EchoStub(channel)
            reply = await stub.unary(echo_pb.EchoRequest(message="hi"))
            streamed = [r.index async for r in stub.server_stream(echo_pb.EchoRequest(count=2))]
        if mtls:  # and without the client certificate, grpcio refuses it
            async with rpcfw.Channel(
                f"localhost:{port}", tls=rpcfw.ChannelTLS(certs.ca.cert_pem.bytes())
            ) as channel:
                with pytest.raises(rpcfw.RpcError) as refused:
                    await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(), timeout=5)
                assert refused.value.status is rpcfw.Status.UNAVAILABLE
    finally:
        await server.stop(0)
    assert reply.server_id == "grpcio" and streamed == [0, 1]


@pytest.mark.parametrize("mtls", [False, True], ids=["tls", "mtls"])
async def test_grpcio_client_calls_an_rpcfw_tls_server(
    echo_pb: ModuleType, certs: Certs, mtls: bool
) -> None:
    base: Any = type(make_echo_service(echo_pb, "rpcfw"))

    class WhoAmI(base):  # type: ignore[misc,valid-type]
        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            identity = context.peer_identity
            return echo_pb.EchoResponse(
                message="anonymous" if identity is None else identity.subject, server_id="rpcfw"
            )

    cert, key = certs.files(certs.server, "server")
    tls = rpcfw.ServerTLS(
        cert, key, client_ca=certs.ca_path if mtls else None, require_client_cert=mtls
    )
    server = rpcfw.Server([WhoAmI()])
    await server.start("127.0.0.1", 0, tls=tls)
    private_key, chain = certs.grpc_pair(certs.client) if mtls else (None, None)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs.ca.cert_pem.bytes(),
        private_key=private_key,
        certificate_chain=chain,
    )
    channel = grpc.aio.secure_channel(f"localhost:{server.port}", credentials)
    try:
        client = GrpcEchoClient(channel, echo_pb)
        reply = await client.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
        streamed = [r.index async for r in client.server_stream(echo_pb.EchoRequest(count=2))]
        if mtls:
            bare = grpc.aio.secure_channel(
                f"localhost:{server.port}",
                grpc.ssl_channel_credentials(root_certificates=certs.ca.cert_pem.bytes()),
            )
            try:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await GrpcEchoClient(bare, echo_pb).unary(echo_pb.EchoRequest(), timeout=5)
                assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            finally:
                await bare.close()
            assert server.stats.tls_handshakes_failed >= 1
    finally:
        await channel.close()
        await server.stop(0)
    assert streamed == [0, 1]
    assert ("CN=grpcio-or-rpcfw" in reply.message) if mtls else reply.message == "anonymous"
