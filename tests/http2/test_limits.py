"""Per-connection limits: concurrent streams, metadata size, flow control, the handshake.

Each limit is answered on the stream it concerns (the connection lives) or, for the handshake,
by closing a connection that never started; work is checked as counts.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest
from hyperframe.frame import DataFrame, SettingsFrame

import rpcfw
from rpcfw.transport import H2Config
from tests.echo_service import make_echo_service, wait_until

from .raw_peer import (
    LIVENESS,
    PREFACE,
    Err,
    Setting,
    call_ok,
    channel_unary,
    echo_server,
    grpc_message,
    headers_frames,
    hello,
    literal_block,
    raw_peer,
    reply_message,
    request_headers,
    server_connections,
    serving,
)


def _blocking_echo(echo_pb: ModuleType) -> Any:
    """The echo service whose unary handler waits for ``release`` (counting how many wait)."""
    base = type(make_echo_service(echo_pb, "blocking"))

    class BlockingEcho(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()
            self.running = 0
            self.most_running = 0

        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            try:
                await self.release.wait()
            finally:
                self.running -= 1
            return await super().unary(request, context)

    return BlockingEcho()


# -- 2. MAX_CONCURRENT_STREAMS --------------------------------------------------------------------
async def test_stream_beyond_max_concurrent_streams_is_refused_not_the_connection(
    echo_pb: ModuleType,
) -> None:
    service = _blocking_echo(echo_pb)
    async with serving([service], max_concurrent_streams=4) as server:
        async with raw_peer(server.port) as peer:
            assert peer.server_settings[Setting.MAX_CONCURRENT_STREAMS] == 4
            blocked = [peer.request(hello(echo_pb, f"blocked {i}")) for i in range(4)]
            await peer.drain()
            await wait_until(lambda: service.running == 4, within=LIVENESS)

            fifth = await peer.unary(hello(echo_pb, "fifth"))
            assert fifth.reset == Err.REFUSED_STREAM
            assert peer.frames_on(fifth.stream_id) == [peer.resets[0]]  # nothing but the RST
            await peer.sync()  # the connection lives: a PING is acked
            assert not peer.goaways
            stats = server.transport_stats()
            assert (stats.streams_refused, stats.calls_started) == (1, 4)

            service.release.set()
            for index, sid in enumerate(blocked):
                await peer.response(sid)
                assert reply_message(echo_pb, peer.streams[sid]) == f"blocked {index}"
            await wait_until(lambda: server.running_calls == 0, within=LIVENESS)
            await call_ok(echo_pb, peer, "after the slots freed")
            assert not peer.goaways
        assert service.most_running == 4
        await channel_unary(echo_pb, server)
        stats = server.transport_stats()
        assert (stats.streams_refused, stats.calls_started) == (1, 6)


async def test_channel_waits_for_a_stream_slot_instead_of_being_refused(
    echo_pb: ModuleType,
) -> None:
    service = _blocking_echo(echo_pb)
    calls = 20
    async with (
        serving([service], max_concurrent_streams=4) as server,
        rpcfw.Channel(server.address) as channel,
    ):
        stub = echo_pb.EchoStub(channel)
        pending = [
            asyncio.ensure_future(
                stub.unary(echo_pb.EchoRequest(message=f"call {i}"), timeout=LIVENESS)
            )
            for i in range(calls)
        ]
        await wait_until(lambda: service.running == 4, within=LIVENESS)
        assert server.running_calls == 4
        service.release.set()
        replies = await asyncio.gather(*pending)
        assert [r.message for r in replies] == [f"call {i}" for i in range(calls)]
        assert service.most_running == 4
        stats = server.transport_stats()
        assert stats.streams_refused == 0  # the client waited; it never tripped the limit
        assert stats.calls_started == calls
        assert stats.connections_accepted == 1


# -- 6. oversized metadata ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [100_000, 1 << 20], ids=["100KB", "1MiB"])
async def test_oversized_metadata_is_resource_exhausted_on_that_stream_only(
    echo_pb: ModuleType, size: int
) -> None:
    """A single ``x-big`` header (HPACK literal, not indexed, not Huffman-coded): 100 KB, or
    1 MiB spread over 65 frames (HEADERS + CONTINUATION). The server decodes the block as it
    arrives, skips the value it cannot keep, and answers that stream only."""
    config = H2Config()
    async with echo_server(echo_pb, http2=config) as server:
        async with raw_peer(server.port) as peer:
            assert peer.server_settings[Setting.MAX_HEADER_LIST_SIZE] == 16384
            sid = peer.take_stream_id()
            block = literal_block(request_headers(extra=[("x-big", "a" * size)]))
            assert len(block) < config.max_header_block_size
            await peer.send(
                headers_frames(sid, block, end_stream=False),
                DataFrame(sid, data=grpc_message(hello(echo_pb)), flags=["END_STREAM"]),
            )
            log = await peer.response(sid)
            # a trailers-only answer: one HEADERS block with END_STREAM
            assert len(log.blocks) == 1 and log.ended and not log.body
            fields = dict(log.blocks[0])
            assert fields[":status"] == "200"
            assert fields["content-type"] == "application/grpc"
            assert log.grpc_status == 8  # RESOURCE_EXHAUSTED
            # ... then RST_STREAM(NO_ERROR): the server wants no more of the request
            await peer.read_until(lambda f: log.reset is not None, "RST_STREAM after the answer")
            assert log.reset == Err.NO_ERROR

            await call_ok(echo_pb, peer, "after big metadata")
            assert not peer.goaways
            assert server.transport_stats().calls_started == 1  # no handler for the big one
        await channel_unary(echo_pb, server)


# -- 12. handshake timeout ------------------------------------------------------------------------
@pytest.mark.parametrize("sent", [b"", PREFACE], ids=["nothing", "preface-only"])
async def test_a_peer_that_does_not_handshake_is_closed(echo_pb: ModuleType, sent: bytes) -> None:
    async with echo_server(echo_pb, handshake_timeout=0.2) as server:
        async with raw_peer(server.port, handshake=False) as peer:
            if sent:
                await peer.send(sent)
            frames = await peer.read_until_eof()
            assert peer.eof
            assert isinstance(frames[0], SettingsFrame)  # the server's own SETTINGS, at once
            (goaway,) = peer.goaways
            assert goaway.error_code == Err.PROTOCOL_ERROR
            assert goaway.last_stream_id == 0
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        assert server.transport_stats().calls_started == 0
        await channel_unary(echo_pb, server)  # a real client handshakes in time


# -- 14. slow consumer isolation ------------------------------------------------------------------
async def test_streams_nobody_reads_do_not_stall_a_unary_call_on_the_connection(
    echo_pb: ModuleType,
) -> None:
    """Server-streaming calls whose consumer stopped after the first reply fill their stream
    windows (1 MiB each); together they have received more than the connection window (16
    MiB), so a unary call on the same connection completes only because the client credits
    the connection window as data arrives, not as the application reads it."""
    defaults = H2Config()
    window, connection_window = defaults.initial_window_size, defaults.connection_window_size
    streams = connection_window // window + 1
    payload = b"p" * (64 << 10)
    count = 2 * window // len(payload)  # twice what one stream window lets through
    async with echo_server(echo_pb) as server, rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        calls = [
            stub.server_stream(
                echo_pb.EchoRequest(message="slow", payload=payload, count=count),
                timeout=LIVENESS,  # liveness bound only
            )
            for _ in range(streams)
        ]
        try:
            for call in calls:  # each call is flowing; then its consumer pauses for good
                assert (await call.__anext__()).index == 0
            (conn,) = server_connections(server)

            def stalled() -> int:
                return sum(1 for sid in conn.core.stream_ids() if conn.core.pending_bytes(sid))

            # every handler now has replies queued that flow control does not let out
            await wait_until(lambda: stalled() == streams, within=LIVENESS)
            reply = await stub.unary(echo_pb.EchoRequest(message="through"), timeout=LIVENESS)
            assert reply.message == "through"
            assert stalled() == streams  # the slow streams are still paused
            assert server.running_calls == streams
        finally:
            for call in calls:
                await call.aclose()  # type: ignore[attr-defined]
        await wait_until(lambda: server.running_calls == 0, within=LIVENESS)
        assert server.transport_stats().calls_started == streams + 1
