"""Attacks on one connection: the server answers exactly as HTTP/2 and gRPC say, does work
bounded by counts (never per attacking frame), and keeps serving everyone else.

Each test checks (a) the answer on the wire, (b) a normal call afterwards (with rpcfw's own
Channel on a new connection, and on the same raw connection where that one should live) and
(c) bounded work, as counts.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from rpcfw.transport import H2Config
from tests.echo_service import wait_until

from .raw_peer import (
    LIVENESS,
    MAX_FRAME,
    Err,
    RawPeer,
    Setting,
    call_ok,
    channel_unary,
    echo_server,
    hpack_bomb,
    literal_block,
    raw_peer,
    request_headers,
    server_connections,
)

RAPID_RESET_STREAMS = 5_000
RAPID_RESET_BATCH = 1_000  # pairs per write


def _rapid_reset_batches(first_id: int, count: int) -> list[bytes]:
    """HEADERS (a complete request head) immediately followed by RST_STREAM(CANCEL), per stream;
    ``RAPID_RESET_BATCH`` pairs per write."""
    block = literal_block(request_headers())  # touches no HPACK table: reusable
    pairs = [
        HeadersFrame(sid, data=block, flags=["END_HEADERS"]).serialize()
        + RstStreamFrame(sid, error_code=Err.CANCEL).serialize()
        for sid in range(first_id, first_id + 2 * count, 2)
    ]
    return [b"".join(pairs[i : i + RAPID_RESET_BATCH]) for i in range(0, count, RAPID_RESET_BATCH)]


async def _rapid_reset(peer: RawPeer, count: int) -> None:
    """Send ``count`` HEADERS+RST_STREAM pairs, then a PING; read (concurrently) until its ACK
    or a GOAWAY."""
    first = peer.take_stream_id()
    peer.next_stream_id = first + 2 * count
    marker = b"rstdone!"

    async def attack() -> None:
        for batch in _rapid_reset_batches(first, count):
            await peer.send(batch)
        await peer.send(PingFrame(0, opaque_data=marker))

    async def watch() -> None:
        await peer.read_until(
            lambda f: (isinstance(f, PingFrame) and f.opaque_data == marker) or bool(peer.goaways),
            "the PING ACK after the rapid resets, or a GOAWAY",
        )

    await asyncio.gather(attack(), watch())


# -- 1. Rapid Reset (CVE-2023-44487) -------------------------------------------------------------
async def test_rapid_reset_starts_no_handler_per_reset_stream(echo_pb: ModuleType) -> None:
    config = H2Config()  # the defaults: 100 streams, a reset budget of 10,000 (1,000/s)
    limit = config.max_concurrent_streams
    async with echo_server(echo_pb, http2=config) as server:
        async with raw_peer(server.port) as peer:
            await _rapid_reset(peer, RAPID_RESET_STREAMS)
            # every stream either started (and was reset by us: no answer) or was refused
            assert all(f.error_code == Err.REFUSED_STREAM for f in peer.resets)
            if peer.goaways:  # the reset budget was spent: ENHANCE_YOUR_CALM, then the socket ends
                (goaway,) = peer.goaways
                assert goaway.error_code == Err.ENHANCE_YOUR_CALM
                assert goaway.additional_data == b"too_many_resets"
                await peer.read_until_eof()
                stats = server.transport_stats()
                assert stats.resets_received + stats.streams_refused <= RAPID_RESET_STREAMS
            else:  # the connection lives and serves a call
                await call_ok(echo_pb, peer, "after the resets")
                stats = server.transport_stats()
                assert stats.resets_received + stats.streams_refused == RAPID_RESET_STREAMS
            assert len(peer.resets) == stats.streams_refused
            assert 0 < stats.resets_received <= RAPID_RESET_STREAMS
        await wait_until(lambda: server.running_calls == 0, within=LIVENESS)
        await channel_unary(echo_pb, server)
        stats = server.transport_stats()
        # handler tasks: at most one window of streams (a reset split from its HEADERS by a read
        # boundary) plus the normal calls, never one per stream sent
        assert stats.calls_started <= limit + 2
        assert server.running_calls == 0


async def test_rapid_reset_beyond_the_budget_is_goaway_enhance_your_calm(
    echo_pb: ModuleType,
) -> None:
    budget = 50
    config = H2Config(max_reset_burst=budget, max_resets_per_second=1.0)
    async with echo_server(echo_pb, http2=config) as server:
        async with raw_peer(server.port) as peer:
            await _rapid_reset(peer, RAPID_RESET_STREAMS)
            (goaway,) = peer.goaways
            assert goaway.error_code == Err.ENHANCE_YOUR_CALM
            assert goaway.additional_data == b"too_many_resets"
            await peer.read_until_eof()
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        await wait_until(lambda: server.running_calls == 0, within=LIVENESS)
        stats = server.transport_stats()
        assert stats.connections_ended_for_abuse == 1
        # the budget (plus the refill while the batch was read) was spent; nothing past the GOAWAY
        assert budget < stats.resets_received <= RAPID_RESET_STREAMS
        assert stats.calls_started <= config.max_concurrent_streams
        await channel_unary(echo_pb, server)


# -- 3. PING flood --------------------------------------------------------------------------------
async def test_ping_flood_without_calls_is_goaway_too_many_pings(echo_pb: ModuleType) -> None:
    config = H2Config()
    strikes = config.max_ping_strikes
    async with echo_server(echo_pb, http2=config) as server:
        async with raw_peer(server.port) as peer:
            await peer.send(
                b"".join(PingFrame(0, opaque_data=b"%08d" % i).serialize() for i in range(50))
            )
            goaway = await peer.read_goaway()
            assert goaway.error_code == Err.ENHANCE_YOUR_CALM
            assert goaway.additional_data == b"too_many_pings"
            acks_before = len(peer.ping_acks)
            assert 1 <= acks_before <= strikes + 2
            await peer.read_until_eof()
            assert len(peer.ping_acks) == acks_before  # nothing answered after the GOAWAY
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        assert server.transport_stats().connections_ended_for_abuse == 1
        await channel_unary(echo_pb, server)


# -- 4. SETTINGS flood ----------------------------------------------------------------------------
async def test_settings_flood_is_acked_and_the_connection_serves(echo_pb: ModuleType) -> None:
    flood = 20_000
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        await peer.read_until(lambda f: peer.settings_acks >= 1, "the ACK of our first SETTINGS")
        frame = SettingsFrame(0, settings={Setting.MAX_FRAME_SIZE: MAX_FRAME}).serialize()

        async def read_acks() -> None:
            await peer.read_until(
                lambda f: peer.settings_acks == 1 + flood or bool(peer.goaways),
                f"{flood} SETTINGS ACKs",
            )

        await asyncio.gather(peer.send(frame * flood), read_acks())
        assert not peer.goaways
        assert peer.settings_acks == 1 + flood
        await peer.sync()
        assert peer.settings_acks == 1 + flood  # exactly one ACK per SETTINGS
        await call_ok(echo_pb, peer, "after the SETTINGS flood")
        await channel_unary(echo_pb, server)
        assert server.stats.calls_started == 2


# -- 5. a peer that never reads -------------------------------------------------------------------
async def test_peer_that_never_reads_makes_the_server_stop_reading(echo_pb: ModuleType) -> None:
    """PINGs (allowed here) without ever reading the ACKs: once its output backs up the server
    stops reading that connection, so what it queues stays bounded, and it serves others."""
    config = H2Config(permit_pings_without_calls=True, min_ping_interval=0)
    per_chunk = 2_000
    max_pings = 500_000  # count bound (8.5 MB); the kernel's socket buffers take a few MB
    server_buffer_bound = 512 << 10
    async with echo_server(echo_pb, http2=config) as server:
        # small client buffers, so that our side stops taking the ACKs early
        async with raw_peer(server.port, limit=1 << 14, rcvbuf=1 << 14, sndbuf=1 << 14) as peer:
            (conn,) = server_connections(server)
            server_transport = conn.transport
            assert server_transport is not None
            chunk = PingFrame(0, opaque_data=b"noreader").serialize() * per_chunk
            sent = 0
            most_queued = 0

            def settled() -> bool:  # every PING sent so far answered, or the server stopped reading
                return conn.core.control_replies > sent or not server_transport.is_reading()

            for _ in range(max_pings // per_chunk):
                peer.writer.write(chunk)
                sent += per_chunk
                await wait_until(settled, within=LIVENESS)
                most_queued = max(most_queued, server_transport.get_write_buffer_size())
                if not server_transport.is_reading():
                    break
            assert not server_transport.is_reading(), f"the server read all {sent} PINGs"
            replies = conn.core.control_replies
            queued = server_transport.get_write_buffer_size()
            assert most_queued < server_buffer_bound
            # our writes now stall: 1 MiB more stays in our buffer while a normal call (on a new
            # connection) is served; the server reads nothing and queues nothing more meanwhile
            peer.writer.write(PingFrame(0, opaque_data=b"stalled!").serialize() * (1 << 16))
            drain = asyncio.ensure_future(peer.writer.drain())
            await channel_unary(echo_pb, server, "while one peer does not read")
            assert not drain.done()
            assert peer.writer.transport.get_write_buffer_size() > 0
            assert conn.core.control_replies == replies
            assert server_transport.get_write_buffer_size() == queued
            assert not conn.closed
            drain.cancel()
            peer.writer.transport.abort()
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        await channel_unary(echo_pb, server, "after the bad peer left")


# -- 7. HPACK bomb --------------------------------------------------------------------------------
async def test_hpack_bomb_is_a_connection_error(echo_pb: ModuleType) -> None:
    """One ~4 KiB value in the dynamic table, then referenced 4,000 times (an 8 KiB block that
    decodes to ~16 MB): GOAWAY, and the server stays up."""
    references = 4_000
    per_frame = 1_000
    async with echo_server(echo_pb) as server:
        async with raw_peer(server.port) as peer:
            head, refs = hpack_bomb(4_000, references)
            sid = peer.take_stream_id()
            frames = [HeadersFrame(sid, data=literal_block(request_headers()) + head).serialize()]
            for start in range(0, references, per_frame):
                last = start + per_frame >= references
                frames.append(
                    ContinuationFrame(
                        sid,
                        data=refs[start : start + per_frame],
                        flags=["END_HEADERS"] if last else [],
                    ).serialize()
                )
            await peer.send(*frames)
            goaway = await peer.read_goaway()
            # rpcfw answers ENHANCE_YOUR_CALM (its decoded-size cap); COMPRESSION_ERROR is as right
            assert goaway.error_code in (Err.ENHANCE_YOUR_CALM, Err.COMPRESSION_ERROR)
            assert goaway.last_stream_id == 0
            assert not peer.frames_on(sid)  # no answer on the stream, no handler
            await peer.read_until_eof()
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        stats = server.transport_stats()
        assert stats.calls_started == 0
        assert stats.connections_ended_for_abuse == 1
        await channel_unary(echo_pb, server)


# -- 8. CONTINUATION flood ------------------------------------------------------------------------
async def test_continuation_flood_is_goaway_before_the_block_ends(echo_pb: ModuleType) -> None:
    """HEADERS without END_HEADERS, then CONTINUATION frames (never END_HEADERS) totalling
    more than max_header_block_size: the server cannot wait for the end of the block; it
    answers GOAWAY once the block passes that size."""
    config = H2Config()
    frames_sent = config.max_header_block_size // MAX_FRAME + 8
    assert frames_sent * MAX_FRAME > config.max_header_block_size
    async with echo_server(echo_pb, http2=config) as server:
        async with raw_peer(server.port) as peer:
            sid = peer.take_stream_id()
            first = HeadersFrame(sid, data=literal_block(request_headers())).serialize()
            filler = ContinuationFrame(sid, data=b"\x00" * MAX_FRAME).serialize()

            async def flood() -> None:
                await peer.send(first + filler * frames_sent)

            await asyncio.gather(flood(), peer.read_goaway())
            (goaway,) = peer.goaways
            assert goaway.error_code == Err.ENHANCE_YOUR_CALM
            assert goaway.last_stream_id == 0  # the stream never started
            await peer.read_until_eof()
        await wait_until(lambda: server.open_connections == 0, within=LIVENESS)
        assert server.transport_stats().calls_started == 0
        await channel_unary(echo_pb, server)
