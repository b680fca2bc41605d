"""TLS and mutual TLS: the server checks client certificates and authorizes on the caller's
verified identity; a client without a certificate is refused during the handshake.

The certificates are made at run time with `trustme` (a throwaway CA; `pip install trustme`);
in production, point ServerTLS / ChannelTLS at your PEM files.

    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/tls_mtls.py
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import trustme
from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest

import rpcfw


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        caller = context.peer_identity  # the verified client certificate
        if caller is None or "billing.internal" not in caller.dns_names:
            context.abort(rpcfw.Status.PERMISSION_DENIED, "only billing may call")
        return HelloReply(message=f"Hello, {request.name}, you are {caller.dns_names[0]}")


def make_certificates(folder: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    server = ca.issue_cert("greeter.internal")
    server.cert_chain_pems[0].write_to_path(folder / "server.crt")
    server.private_key_pem.write_to_path(folder / "server.key")
    client = ca.issue_cert("billing.internal")
    client.cert_chain_pems[0].write_to_path(folder / "client.crt")
    client.private_key_pem.write_to_path(folder / "client.key")


async def main(folder: Path) -> None:
    make_certificates(folder)
    tls = rpcfw.ServerTLS(
        folder / "server.crt",
        folder / "server.key",
        client_ca=folder / "ca.pem",  # client certificates must chain to this CA
        require_client_cert=True,
    )
    server = rpcfw.Server([Greeter()])
    await server.start("127.0.0.1", 0, tls=tls)
    try:
        client_tls = rpcfw.ChannelTLS(
            folder / "ca.pem",
            cert_chain=folder / "client.crt",
            private_key=folder / "client.key",
            server_name="greeter.internal",  # the name in the server's certificate
        )
        async with rpcfw.Channel(server.address, tls=client_tls) as channel:
            reply = await GreeterStub(channel).say_hello(HelloRequest(name="ann"), timeout=5)
            print("mTLS:", reply.message)

        no_cert = rpcfw.ChannelTLS(folder / "ca.pem", server_name="greeter.internal")
        async with rpcfw.Channel(server.address, tls=no_cert) as channel:
            try:
                await GreeterStub(channel).say_hello(HelloRequest(name="eve"), timeout=5)
            except rpcfw.RpcError as error:
                print("without a client certificate:", error.code.name)
    finally:
        await server.stop(grace=1)
    print("handshakes the server refused:", server.stats.tls_handshakes_failed)  # logged too


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))
