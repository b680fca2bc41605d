"""Etcd3PyClient against a real etcd 3.4 (never mocked); every test is bounded (asyncio.timeout).

A watch starts at a revision, so etcd replays every event from there: a test may write before
the watch's stream is up, and waits for nothing. Where a test needs the stream up (etcd dies
"mid-watch"), a first batch received on it proves it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from rpcfw.etcd import (
    Etcd3PyClient,
    EtcdUnavailable,
    LeaseLost,
    WatchCompacted,
    WatchEvent,
    WatchEventType,
)

from ..etcd_server import EtcdProcess, free_port
from .conftest import CLIENT_TIMEOUT

PUT, DELETE = WatchEventType.PUT, WatchEventType.DELETE


async def next_batch(it: AsyncIterator[list[WatchEvent]]) -> list[WatchEvent]:
    async with asyncio.timeout(3):
        return await anext(it)


async def collect(it: AsyncIterator[list[WatchEvent]], count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    while len(events) < count:
        events.extend(await next_batch(it))
    return events


# -- KV ----------------------------------------------------------------------------------------


async def test_put_then_get_prefix_returns_snapshot_with_revision(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(5):
        rev1 = await client.put("/svc/a/1", b"one")
        rev2 = await client.put("/svc/a/2", b"\x00two\xff")
        await client.put("/svc/b/1", b"other")
        assert rev2 == rev1 + 1
        snap = await client.get_prefix("/svc/a/")
        assert snap.revision == rev2 + 1
        assert [(kv.key, kv.value, kv.mod_revision, kv.lease) for kv in snap.items] == [
            ("/svc/a/1", b"one", rev1, 0),
            ("/svc/a/2", b"\x00two\xff", rev2, 0),
        ]
        empty = await client.get_prefix("/nothing/")
        assert empty.items == [] and empty.revision == snap.revision


async def test_delete_removes_key(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(5):
        await client.put("/d/k", b"v")
        await client.put("/d/keep", b"v")
        await client.delete("/d/k")
        await client.delete("/d/missing")  # not an error
        snap = await client.get_prefix("/d/")
        assert [kv.key for kv in snap.items] == ["/d/keep"]


# -- leases ------------------------------------------------------------------------------------


async def test_grant_lease_and_put_with_lease(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(5):
        lease = await client.grant_lease(5)
        assert lease > 0
        await client.put("/l/k", b"v", lease=lease)
        (kv,) = (await client.get_prefix("/l/")).items
        assert kv.lease == lease


async def test_put_with_unknown_lease_raises_lease_lost(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(5):
        with pytest.raises(LeaseLost):
            await client.put("/l/k", b"v", lease=0x1234)


async def test_keep_alive_stream_keeps_lease_past_its_ttl(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(10):
        lease = await client.grant_lease(2)  # etcd's minimum
        await client.put("/ka/k", b"v", lease=lease)
        # etcd's TTL runs on the wall clock: the behaviour under test needs the stream kept up
        # past it (3.5 s > the 2 s TTL); the clock only says when to stop, nothing asserts on it
        started = time.monotonic()
        refreshes = 0
        async for ttl in client.keep_alive(lease, 2):
            assert ttl == 2
            refreshes += 1
            if time.monotonic() - started > 3.5:
                break
        assert refreshes >= 4  # every third of the TTL: 6 or 7 by then; the lease lives on them
        assert [kv.key for kv in (await client.get_prefix("/ka/")).items] == ["/ka/k"]


async def test_lease_expires_without_keep_alive(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(10):
        lease = await client.grant_lease(2)
        put = await client.put("/exp/k", b"v", lease=lease)
        watch = client.watch_prefix("/exp/", put + 1)
        try:  # the lease's TTL (2 s) is the behaviour under test: etcd deletes the key then
            expired = await anext(watch)  # (the test's timeout is the liveness bound)
        finally:
            await watch.aclose()
        assert [(e.type, e.key) for e in expired] == [(DELETE, "/exp/k")]
        assert (await client.get_prefix("/exp/")).items == []
        with pytest.raises(LeaseLost):
            await anext(client.keep_alive(lease, 2))


async def test_revoke_lease_deletes_its_keys_and_keep_alive_raises_lease_lost(
    client: Etcd3PyClient,
) -> None:
    async with asyncio.timeout(5):
        lease = await client.grant_lease(30)
        await client.put("/rv/a", b"1", lease=lease)
        await client.put("/rv/b", b"2", lease=lease)
        await client.put("/rv/c", b"3")
        await client.revoke_lease(lease)
        assert [kv.key for kv in (await client.get_prefix("/rv/")).items] == ["/rv/c"]
        await client.revoke_lease(lease)  # again: not an error
        with pytest.raises(LeaseLost):
            await anext(client.keep_alive(lease, 30))


# -- watch -------------------------------------------------------------------------------------


async def test_watch_from_revision_plus_one_sees_put_and_delete_in_order(
    client: Etcd3PyClient,
) -> None:
    async with asyncio.timeout(10):
        await client.put("/w/old", b"before")
        snap = await client.get_prefix("/w/")
        watch = client.watch_prefix("/w/", snap.revision + 1)
        try:
            first = asyncio.ensure_future(collect(watch, 4))  # from a revision: nothing missed
            r1 = await client.put("/w/a", b"1")
            r2 = await client.put("/w/a", b"2")
            await client.put("/other/x", b"ignored")
            await client.delete("/w/old")
            r4 = await client.put("/w/b", b"3")
            events = await first
        finally:
            await watch.aclose()
        assert [(e.type, e.key, e.value) for e in events] == [
            (PUT, "/w/a", b"1"),
            (PUT, "/w/a", b"2"),
            (DELETE, "/w/old", b""),
            (PUT, "/w/b", b"3"),
        ]
        assert [e.mod_revision for e in events] == [r1, r2, r2 + 2, r4]


async def test_watch_sees_every_event_of_a_burst(client: Etcd3PyClient) -> None:
    """etcd3-py's own stream decoder drops messages that share a read: ours must not."""
    async with asyncio.timeout(10):
        start = (await client.get_prefix("/burst/")).revision + 1
        watch = client.watch_prefix("/burst/", start)
        try:
            await asyncio.gather(*(client.put(f"/burst/{i:03}", b"x" * i) for i in range(60)))
            events = await collect(watch, 60)
        finally:
            await watch.aclose()
        assert sorted(e.key for e in events) == [f"/burst/{i:03}" for i in range(60)]
        revisions = [e.mod_revision for e in events]
        assert revisions == sorted(revisions) and len(set(revisions)) == 60


async def test_watch_replays_history_from_an_old_revision(client: Etcd3PyClient) -> None:
    async with asyncio.timeout(10):
        first = await client.put("/h/k", b"0")
        for i in range(1, 30):
            await client.put("/h/k", str(i).encode())
        watch = client.watch_prefix("/h/", first)
        try:
            events = await collect(watch, 30)
        finally:
            await watch.aclose()
        assert [e.value for e in events] == [str(i).encode() for i in range(30)]


async def test_watch_from_compacted_revision_raises_watch_compacted(
    client: Etcd3PyClient,
) -> None:
    async with asyncio.timeout(5):
        first = await client.put("/c/k", b"0")
        for i in range(5):
            last = await client.put("/c/k", str(i).encode())
        await client.compact(last)
        watch = client.watch_prefix("/c/", first + 1)
        with pytest.raises(WatchCompacted) as info:
            await anext(watch)
        assert info.value.compact_revision == last
        # from the compact revision on, watching works again
        watch = client.watch_prefix("/c/", last + 1)
        try:
            pending = asyncio.ensure_future(next_batch(watch))
            rev = await client.put("/c/k", b"new")
            assert [e.mod_revision for e in await pending] == [rev]
        finally:
            await watch.aclose()


# -- faults ------------------------------------------------------------------------------------


async def test_client_construction_needs_no_running_etcd() -> None:
    async with asyncio.timeout(5):
        proc = EtcdProcess()
        c = Etcd3PyClient([proc.endpoint], timeout=CLIENT_TIMEOUT)  # no IO, etcd not started
        try:
            with pytest.raises(EtcdUnavailable):
                await c.get_prefix("/")
            await asyncio.to_thread(proc.start)
            await c.put("/lazy/k", b"v")
            assert len((await c.get_prefix("/lazy/")).items) == 1
        finally:
            await c.close()
            proc.kill()
            proc.remove_data()


async def test_etcd_killed_calls_raise_etcd_unavailable_from_the_connection_error(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    """Every kind of call on a killed etcd raises EtcdUnavailable after its one bounded attempt,
    caused by the refused (or dropped) connection: not by waiting out the per-attempt timeout."""
    async with asyncio.timeout(10):  # liveness bound only
        lease = await client.grant_lease(5)
        etcd.kill()
        for what, call in (
            ("get_prefix", lambda: client.get_prefix("/")),
            ("put", lambda: client.put("/k", b"v")),
            ("delete", lambda: client.delete("/k")),
            ("grant_lease", lambda: client.grant_lease(5)),
            ("revoke_lease", lambda: client.revoke_lease(lease)),
            ("keepalive", lambda: anext(client.keep_alive(lease, 5))),
            ("watch", lambda: anext(client.watch_prefix("/", 1))),
        ):
            with pytest.raises(EtcdUnavailable) as info:
                await call()
            assert str(info.value).startswith(
                f"etcd {what}: no endpoint answered within {CLIENT_TIMEOUT}s ({etcd.endpoint})"
            )
            assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError), what


async def test_unroutable_endpoint_raises_etcd_unavailable_within_timeout() -> None:
    """An endpoint that accepts TCP but never answers: the per-attempt timeout applies."""
    async with asyncio.timeout(5):
        writers: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)  # accept, never answer

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = Etcd3PyClient([f"127.0.0.1:{port}"], timeout=0.3)
        try:
            for what, call in (
                ("get_prefix", lambda: c.get_prefix("/")),
                ("watch", lambda: anext(c.watch_prefix("/", 1))),
            ):
                with pytest.raises(EtcdUnavailable) as info:
                    await call()
                # ended by the per-attempt timeout (the endpoint never answers: nothing else
                # could end the call before the block's liveness bound)
                assert isinstance(info.value.__cause__, TimeoutError), what
                assert str(info.value).startswith(f"etcd {what}: no endpoint answered within 0.3s")
            assert writers  # the endpoint did accept the connections it never answered
        finally:
            await c.close()
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()


async def test_etcd_killed_mid_watch_raises_etcd_unavailable(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    async with asyncio.timeout(5):
        start = (await client.get_prefix("/mw/")).revision + 1
        watch = client.watch_prefix("/mw/", start)
        try:
            pending = asyncio.ensure_future(next_batch(watch))
            await client.put("/mw/a", b"1")
            assert len(await pending) == 1  # the watch's stream is up
            pending = asyncio.ensure_future(next_batch(watch))
            etcd.kill()
            with pytest.raises(EtcdUnavailable) as info:
                await pending
            # noticed from the broken stream itself, not by the probe of a quiet watch
            assert f"watch stream from {etcd.endpoint} " in str(info.value)
            assert (client.watch_probes, client.watch_hangs) == (0, 0)
        finally:
            await watch.aclose()


async def test_etcd_killed_mid_keep_alive_raises_etcd_unavailable(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    async with asyncio.timeout(5):
        lease = await client.grant_lease(2)
        stream = client.keep_alive(lease, 2)
        try:
            assert await anext(stream) == 2
            etcd.kill()
            with pytest.raises(EtcdUnavailable):
                await anext(stream)
        finally:
            await stream.aclose()


async def test_etcd_restarted_with_data_watch_resumes_from_last_revision_plus_one(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    """The resume pattern callers use: on EtcdUnavailable, watch again from last seen + 1."""
    async with asyncio.timeout(20):
        snap = await client.get_prefix("/rs/")
        last_seen = snap.revision
        seen: list[tuple[str, bytes]] = []
        watch = client.watch_prefix("/rs/", last_seen + 1)
        pending = asyncio.ensure_future(next_batch(watch))
        await client.put("/rs/a", b"1")
        for ev in await pending:  # the watch's stream is up
            seen.append((ev.key, ev.value))
            last_seen = ev.mod_revision
        pending = asyncio.ensure_future(next_batch(watch))
        etcd.kill()
        with pytest.raises(EtcdUnavailable):
            await pending
        await watch.aclose()

        await asyncio.to_thread(etcd.start)
        # changes made while nobody watched
        await client.put("/rs/b", b"2")
        await client.delete("/rs/a")
        watch = client.watch_prefix("/rs/", last_seen + 1)
        try:
            events = await collect(watch, 2)
        finally:
            await watch.aclose()
        seen += [(ev.key, ev.value) for ev in events]
        assert seen == [("/rs/a", b"1"), ("/rs/b", b"2"), ("/rs/a", b"")]
        assert [e.type for e in events] == [PUT, DELETE]


async def test_etcd_restarted_without_data_keep_alive_raises_lease_lost(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    async with asyncio.timeout(20):
        lease = await client.grant_lease(10)
        stream = client.keep_alive(lease, 10)
        try:
            assert await anext(stream) == 10
        finally:
            await stream.aclose()
        await asyncio.to_thread(etcd.restart, keep_data=False)
        with pytest.raises(LeaseLost):
            await anext(client.keep_alive(lease, 10))


async def test_etcd_restarted_with_data_keep_alive_continues(
    etcd: EtcdProcess, client: Etcd3PyClient
) -> None:
    async with asyncio.timeout(20):
        lease = await client.grant_lease(10)
        await asyncio.to_thread(etcd.restart, keep_data=True)
        assert await anext(client.keep_alive(lease, 10)) > 0


# -- cluster -----------------------------------------------------------------------------------


async def test_cluster_member_killed_get_put_watch_still_work(
    etcd_cluster: list[EtcdProcess], cluster_client: Etcd3PyClient
) -> None:
    async with asyncio.timeout(20):
        first = await cluster_client.put("/cl/a", b"1")
        start = first + 1
        watch = cluster_client.watch_prefix("/cl/", first)
        assert [e.key for e in await next_batch(watch)] == ["/cl/a"]  # the stream is up
        pending = asyncio.ensure_future(next_batch(watch))
        # the client sticks to the first endpoint while it works: kill that one
        etcd_cluster[0].kill()
        with pytest.raises(EtcdUnavailable):
            await pending
        await watch.aclose()

        rev = await cluster_client.put("/cl/b", b"2")
        snap = await cluster_client.get_prefix("/cl/")
        assert [kv.key for kv in snap.items] == ["/cl/a", "/cl/b"]
        watch = cluster_client.watch_prefix("/cl/", start)  # resume: nothing missed
        try:
            events = await next_batch(watch)
            assert [(e.key, e.mod_revision) for e in events] == [("/cl/b", rev)]
            pending = asyncio.ensure_future(next_batch(watch))
            await cluster_client.delete("/cl/a")
            assert [(e.type, e.key) for e in await pending] == [(DELETE, "/cl/a")]
        finally:
            await watch.aclose()
        lease = await cluster_client.grant_lease(5)
        assert await anext(cluster_client.keep_alive(lease, 5)) > 0


async def test_cluster_client_with_a_dead_endpoint_listed_first(
    etcd_cluster: list[EtcdProcess],
) -> None:
    async with asyncio.timeout(10):
        dead = f"127.0.0.1:{free_port()}"
        c = Etcd3PyClient([dead, *(m.endpoint for m in etcd_cluster)], timeout=CLIENT_TIMEOUT)
        try:
            await c.put("/dl/k", b"v")
            assert len((await c.get_prefix("/dl/")).items) == 1
        finally:
            await c.close()
