"""Interop fixtures: Echo servers of either kind (grpcio or rpcfw), grpcio clients, a wire tap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw

from ..echo_service import make_echo_service
from .grpc_peer import GrpcEcho, GrpcEchoClient
from .wiretap import WireTap

MiB = 1024 * 1024


@dataclass
class Peer:
    """A running Echo server, ``kind`` "grpcio" or "rpcfw"; its replies carry server_id == kind."""

    kind: str
    port: int
    servicer: Any  # .cancelled (method paths of handlers cancelled mid-call), .calls
    server: Any  # grpc.aio.Server or rpcfw.Server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)


StartServer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def start_server(echo_pb: ModuleType) -> AsyncIterator[StartServer]:
    """``await start_server(kind, mod=..., max_receive=..., max_send=...)``; stopped at teardown.

    ``mod`` picks the message backend of an rpcfw server (grpcio always uses protobuf).
    """
    peers: list[Peer] = []

    async def start(
        kind: str,
        *,
        mod: ModuleType | None = None,
        max_receive: int | None = None,
        max_send: int | None = None,
    ) -> Peer:
        if kind == "grpcio":
            servicer: Any = GrpcEcho(echo_pb)
            options = []
            if max_receive is not None:
                options.append(("grpc.max_receive_message_length", max_receive))
            if max_send is not None:
                options.append(("grpc.max_send_message_length", max_send))
            server: Any = grpc.aio.server(options=options)
            server.add_generic_rpc_handlers([servicer.handler()])
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
        else:
            servicer = make_echo_service(mod or echo_pb, "rpcfw")
            limits: dict[str, Any] = {"max_send_message_length": max_send}
            if max_receive is not None:
                limits["max_receive_message_length"] = max_receive
            server = rpcfw.Server([servicer], **limits)
            await server.start("127.0.0.1", 0)
            port = server.port
        peer = Peer(kind, port, servicer, server)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.stop(0)


@pytest.fixture(params=["grpcio", "rpcfw"], ids=["grpcio-server", "rpcfw-server"])
async def server(request: pytest.FixtureRequest, start_server: StartServer) -> Peer:
    """An Echo server of each kind: the grpcio run is the reference for the rpcfw run."""
    return await start_server(request.param)


@pytest.fixture
async def grpcio_server(start_server: StartServer) -> Peer:
    return await start_server("grpcio")


ConnectGrpc = Callable[..., GrpcEchoClient]


@pytest.fixture
async def grpc_client(echo_pb: ModuleType) -> AsyncIterator[ConnectGrpc]:
    """``grpc_client(address, **options)``: a grpcio Echo client; ``max_receive_message_length=N``
    becomes the channel option ``grpc.max_receive_message_length``. Closed at teardown."""
    channels: list[grpc.aio.Channel] = []

    def connect(address: str, **options: Any) -> GrpcEchoClient:
        channel = grpc.aio.insecure_channel(
            address, options=[(f"grpc.{k}", v) for k, v in options.items()]
        )
        channels.append(channel)
        return GrpcEchoClient(channel, echo_pb)

    yield connect
    for channel in channels:
        await channel.close()


@pytest.fixture
async def wiretap() -> AsyncIterator[WireTap]:
    """A frame-recording proxy: ``await wiretap.start(upstream_port)``, dial ``wiretap.address``."""
    tap = WireTap()
    yield tap
    await tap.close()
