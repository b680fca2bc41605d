"""Closing never swallows the closer's own cancellation.

Each background loop here is blocked in work that, once cancelled, takes until the test says so
to give up (a slow-to-cancel connect, DNS lookup, registry read or keepalive). The task closing
it is cancelled meanwhile: that CancelledError must reach it, and a later close still finishes.
No sockets: the slow work is faked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rpcfw._runtime import AsyncioRuntime
from rpcfw.balancer.base import ConnectivityState
from rpcfw.client._connection import ClientConnection, ConnectionOptions
from rpcfw.client._subchannel import Subchannel
from rpcfw.endpoint import Endpoint
from rpcfw.policy.backoff import BackoffConfig
from rpcfw.registry import Instance, LeaseRegistrar, LocalStore
from rpcfw.resolver import DnsResolver, parse_target
from rpcfw.resolver.service_registry import ServiceRegistryResolver

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)


class SlowToCancel:
    """Work that blocks forever and, once cancelled, only gives up at ``release``."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelling = asyncio.Event()
        self.release = asyncio.Event()

    async def block(self) -> None:
        self.entered.set()
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            self.cancelling.set()
            await self.release.wait()
            raise


async def cancel_the_closer(
    slow: SlowToCancel, close: Callable[[], Awaitable[None]], start: Callable[[], None]
) -> None:
    """Start the loop, let it block in ``slow``, cancel a task blocked in ``close()`` while the
    loop is slow to end; assert the cancellation reached that task; then close for good."""
    async with asyncio.timeout(LIVENESS):  # liveness bound
        start()
        await slow.entered.wait()
        in_close = asyncio.Event()

        async def closer() -> None:
            in_close.set()  # the task runs on into close() and suspends there
            await close()

        task = asyncio.ensure_future(closer())
        await in_close.wait()
        await slow.cancelling.wait()  # close() cancelled the loop, which is slow to end
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled(), "close() swallowed the cancellation of its caller"
        slow.release.set()
        await close()  # finishes what the cancelled close() began


async def test_subchannel_wait_closed_propagates_cancellation_while_a_connect_is_slow_to_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = SlowToCancel()

    async def connect(self: ClientConnection) -> None:
        await slow.block()

    monkeypatch.setattr(ClientConnection, "connect", connect)
    subchannel = Subchannel(
        Endpoint("127.0.0.1", 9),
        ConnectionOptions(),
        BackoffConfig(),
        lambda sc, state: None,
        runtime=AsyncioRuntime(),
    )

    async def close() -> None:
        subchannel.shutdown(drain=False)
        await subchannel.wait_closed()

    await cancel_the_closer(slow, close, subchannel.request_connection)
    assert subchannel.closed and subchannel._task is None


async def test_dns_resolver_close_propagates_cancellation_while_a_lookup_is_slow_to_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = SlowToCancel()

    async def lookup(self: DnsResolver) -> list[Endpoint]:
        await slow.block()
        raise AssertionError("unreachable")

    monkeypatch.setattr(DnsResolver, "_lookup", lookup)
    resolver = DnsResolver(parse_target("dns:///svc.internal:7000"), lambda update: None)
    await cancel_the_closer(slow, resolver.close, resolver.start)
    assert resolver._task is None


class SlowStore(LocalStore):
    """A registry whose snapshot reads (``slow_reads``) or keepalives (``slow_keepalive``)
    block in ``slow``."""

    def __init__(self, slow: SlowToCancel, *, slow_reads: bool = False) -> None:
        super().__init__()
        self.slow = slow
        self.slow_reads = slow_reads

    async def get_prefix(self, prefix: str) -> Any:
        if self.slow_reads:
            await self.slow.block()
        return await super().get_prefix(prefix)

    async def keep_alive(self, lease: int, ttl: int) -> AsyncIterator[int]:
        await self.slow.block()
        yield ttl


async def test_service_registry_resolver_close_propagates_cancellation_if_a_read_is_slow() -> None:
    slow = SlowToCancel()
    closed: list[bool] = []
    resolver = ServiceRegistryResolver(
        parse_target("local:///echo"),
        lambda update: None,
        SlowStore(slow, slow_reads=True),
        close_client=lambda: closed.append(True),
    )
    await cancel_the_closer(slow, resolver.close, resolver.start)
    assert resolver._task is None and closed  # the client is closed once, by the last close


async def test_registrar_deregister_propagates_cancellation_while_keepalive_is_slow_to_cancel() -> (
    None
):
    slow = SlowToCancel()
    store = SlowStore(slow)
    registrar = LeaseRegistrar(store, ttl=5)
    instance = Instance("echo", "i1", "127.0.0.1", 7000)
    await registrar.register([instance])  # announced at once; the keepalive loop then blocks
    assert registrar.lease is not None
    await cancel_the_closer(slow, registrar.deregister, lambda: None)
    assert registrar._task is None and registrar.lease is None
    assert not (await store.get_prefix("/")).items  # the lease was revoked: instance gone


# -- the subchannel's idle-after-loss state machine (fake connection, no sockets) ------------
class FakeProtocol:
    """Just enough of an AioConnection for a ClientConnection to count as connected."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.closed = False
        self.streams: dict[int, Any] = {}
        self.transport = None

    def is_open(self) -> bool:
        return not self.closed

    def lose(self) -> None:
        """The connection is lost (as AioConnection.connection_lost reports it)."""
        if not self.closed:
            self.closed = True
            self.conn.on_closed(self, "connection reset")  # type: ignore[arg-type]

    def close(self) -> None:
        asyncio.get_running_loop().call_soon(self.lose)


async def test_subchannel_that_lost_its_connection_waits_idle_until_a_call_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connects: list[FakeProtocol] = []
    connected = asyncio.Event()

    async def connect(self: ClientConnection) -> None:
        self.protocol = FakeProtocol(self)  # type: ignore[assignment]
        connects.append(self.protocol)  # type: ignore[arg-type]
        connected.set()

    monkeypatch.setattr(ClientConnection, "connect", connect)
    states: list[ConnectivityState] = []
    deferred: list[Subchannel] = []
    subchannel = Subchannel(
        Endpoint("127.0.0.1", 9),
        ConnectionOptions(),
        BackoffConfig(),
        lambda sc, state: states.append(state),
        runtime=AsyncioRuntime(),
        on_deferred=deferred.append,
    )
    async with asyncio.timeout(LIVENESS):  # liveness bound
        subchannel.request_connection()  # never connected before: connects at once
        await connected.wait()
        assert states == [ConnectivityState.CONNECTING, ConnectivityState.READY]

        connects[0].lose()
        assert subchannel.state is ConnectivityState.IDLE and subchannel.connection is None
        subchannel.request_connection()  # the balancer asks: recorded, no connection attempt
        assert subchannel.connect_deferred and deferred == [subchannel]
        assert subchannel.state is ConnectivityState.IDLE and len(connects) == 1

        connected.clear()
        subchannel.connect_now()  # a call needs it: connects at once, no backoff
        assert subchannel.state is ConnectivityState.CONNECTING
        assert not subchannel.connect_deferred
        await connected.wait()
        assert subchannel.state is ConnectivityState.READY and len(connects) == 2
        subchannel.connect_now()  # nothing deferred: no-op
        assert len(connects) == 2

        subchannel.shutdown(drain=False)
        await subchannel.wait_closed()
    assert all(p.closed for p in connects) and subchannel.closed
