"""rpcfw on uvloop: server and channel, all four call kinds (uvloop's transports are not
asyncio.Transport subclasses; rpcfw must not assume they are)."""

from __future__ import annotations

import asyncio
from types import ModuleType

import rpcfw
from tests.echo_service import make_echo_service
from tests.needs import need

uvloop = need("uvloop", "pip install '.[dev]'")


async def _all_kinds(mod: ModuleType) -> list[str]:
    server = rpcfw.Server([make_echo_service(mod, "uv")])
    await server.start()
    try:
        async with rpcfw.Channel(server.address, balancer="round_robin") as channel:
            stub = mod.EchoStub(channel)
            out = [(await stub.unary(mod.EchoRequest(message="u"))).message]
            out += [
                r.message async for r in stub.server_stream(mod.EchoRequest(message="s", count=2))
            ]
            out.append(
                (await stub.client_stream([mod.EchoRequest(message=m) for m in "ab"])).message
            )
            out += [r.message async for r in stub.bidi([mod.EchoRequest(message="b")])]
            return out
    finally:
        await server.stop(grace=1)


def test_server_and_channel_run_all_four_kinds_on_uvloop(echo_pb: ModuleType) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(_all_kinds(echo_pb)) == ["u", "s", "s", "a,b", "b"]


def test_tls_server_and_channel_on_uvloop(echo_pb: ModuleType, tmp_path: object) -> None:
    """uvloop's TCP transport through the TLS acceptor (start_tls) and a TLS channel."""
    import pathlib

    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    folder = pathlib.Path(str(tmp_path))
    leaf.cert_chain_pems[0].write_to_path(folder / "server.crt")
    leaf.private_key_pem.write_to_path(folder / "server.key")

    async def main() -> str:
        server = rpcfw.Server([make_echo_service(echo_pb, "uv")])
        tls = rpcfw.ServerTLS(folder / "server.crt", folder / "server.key")
        await server.start("127.0.0.1", 0, tls=tls)
        try:
            channel_tls = rpcfw.ChannelTLS(ca.cert_pem.bytes())
            async with rpcfw.Channel(server.address, tls=channel_tls) as channel:
                reply = await echo_pb.EchoStub(channel).unary(
                    echo_pb.EchoRequest(message="tls"), timeout=10
                )
                return str(reply.message)
        finally:
            await server.stop(grace=0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main()) == "tls"
