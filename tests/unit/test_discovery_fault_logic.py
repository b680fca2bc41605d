"""Discovery under faults, the IO-free parts and the loops over a fake registry (LocalStore):
the settling view after a resync, state changes logged once, the registrar re-registering at
once after a lost lease and retrying within a third of its TTL while etcd does not answer,
and the resolver's watch restarting after an unexpected error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.endpoint import Endpoint
from rpcfw.etcd.api import EtcdUnavailable, WatchEvent
from rpcfw.policy.backoff import Backoff, BackoffConfig
from rpcfw.registry import Instance, LeaseRegistrar, LocalStore, instance_key
from rpcfw.registry.instance import DEFAULT_PREFIX
from rpcfw.registry.settling import SettlingView
from rpcfw.registry.state_log import StateLog
from rpcfw.resolver import parse_target
from rpcfw.resolver.service_registry import ServiceRegistryResolver
from tests.echo_service import wait_until

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)
NEVER = BackoffConfig(initial=1000.0, max_delay=1000.0, jitter=0.0)  # a sleep would hang


def eps(*ports: int) -> list[Endpoint]:
    return [Endpoint("127.0.0.1", port) for port in ports]


def ports(endpoints: Sequence[Endpoint]) -> list[int]:
    return [e.port for e in endpoints]


# -- SettlingView --------------------------------------------------------------------------
def test_view_is_what_the_registry_lists_when_nothing_was_resynced() -> None:
    view = SettlingView(5.0)
    assert ports(view.view(0.0, eps(2, 1))) == [1, 2]
    assert ports(view.view(1.0, [])) == []  # a normal deregistration empties it
    assert view.settling_until is None and not view.holding


def test_after_a_resync_removals_wait_for_the_window_and_new_endpoints_come_at_once() -> None:
    """Fault: etcd came back empty; only server 1 re-registered so far, 4 is new."""
    view = SettlingView(5.0)
    view.resynced(10.0, eps(1, 2, 3))
    assert view.settling_until == 15.0
    assert ports(view.view(10.0, eps(1))) == [1, 2, 3]
    assert ports(view.view(12.0, eps(1, 4))) == [1, 2, 3, 4]
    assert ports(view.view(15.0, eps(1, 4))) == [1, 4]  # window over: the registry's word
    assert not view.holding and view.settling_until is None


def test_a_resync_never_replaces_a_non_empty_set_by_an_empty_one() -> None:
    """Fault: etcd came back empty and no server re-registered within the window."""
    view = SettlingView(1.0)
    view.resynced(0.0, eps(1, 2))
    assert ports(view.view(5.0, [])) == [1, 2]  # held past the window
    assert view.holding
    assert ports(view.view(6.0, eps(3))) == [3]  # the first listing ends the hold
    assert ports(view.view(7.0, [])) == []  # later removals are the registry's word again


@given(
    before=st.sets(st.integers(1, 20), min_size=1, max_size=6),
    steps=st.lists(
        st.tuples(st.floats(0.0, 3.0), st.sets(st.integers(1, 30), max_size=6)), max_size=12
    ),
)
def test_settling_view_keeps_known_endpoints_in_the_window_and_never_empties_on_resync(
    before: set[int], steps: list[tuple[float, set[int]]]
) -> None:
    window = 5.0
    view = SettlingView(window)
    view.resynced(0.0, eps(*before))
    now = 0.0
    listed_after_window = False
    for advance, listed in steps:
        now += advance
        shown = set(ports(view.view(now, eps(*listed))))
        assert listed <= shown  # what the registry lists is always used
        if now < window:
            assert before <= shown  # nothing known before is dropped during the window
        if now >= window and listed:
            listed_after_window = True
        if not listed_after_window:
            assert shown  # the resync alone never empties the set
        elif listed:
            assert shown == listed


def test_state_log_logs_each_change_once_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    state = StateLog(logging.getLogger("rpcfw.test"), "up")
    with caplog.at_level(logging.INFO, logger="rpcfw.test"):
        for _ in range(3):
            state.count("failed_attempts")
            state.enter("down", "down: %s", "reason")
        state.enter("up", "up again", level=logging.INFO)
    assert [r.getMessage() for r in caplog.records] == ["down: reason", "up again"]
    assert state.entered == {"failed_attempts": 3, "down": 1, "up": 1}
    assert list(state.history) == ["failed_attempts", "down"] + ["failed_attempts"] * 2 + ["up"]


# -- the registrar ---------------------------------------------------------------------------
INSTANCE = Instance("echo.v1.Echo", "i1", "127.0.0.1", 7000)


async def test_registrar_re_registers_at_once_after_its_lease_is_lost_even_with_long_backoff() -> (
    None
):
    """Fault: the registry drops the lease (as etcd does after a wipe or an expiry). The
    registrar's backoff is 1000 s: had it slept, this would not finish."""
    store = LocalStore()
    registrar = LeaseRegistrar(store, ttl=2, backoff=NEVER)
    await registrar.register([INSTANCE])
    old = registrar.lease
    assert old is not None
    try:
        await store.revoke_lease(old)  # the fault
        await wait_until(lambda: registrar.lease not in (None, old), within=LIVENESS)
        keys = [kv.key for kv in (await store.get_prefix("/")).items]
        assert keys == [instance_key(DEFAULT_PREFIX, INSTANCE)]
        assert registrar.history[-2:] == ["lease_lost", "registered"]
        assert registrar.stats["lease_lost"] == 1 and "failed_attempts" not in registrar.stats
    finally:
        await registrar.deregister()


class UnreachableForAWhile(LocalStore):
    """Keepalives fail (EtcdUnavailable) ``failures`` times, then work."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    async def keep_alive(self, lease: int, ttl: int) -> AsyncIterator[int]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise EtcdUnavailable("no endpoint answered")
        async for remaining in super().keep_alive(lease, ttl):
            yield remaining


async def test_registrar_logs_unreachable_once_and_retries_within_a_third_of_its_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: 3 keepalives in a row get no answer. With a 1000 s backoff the retries still
    come every third of the TTL (the lease must be refreshed before it expires), the outage
    is logged once, and its end once."""
    store = UnreachableForAWhile(failures=3)
    registrar = LeaseRegistrar(store, ttl=1, backoff=NEVER)
    with caplog.at_level(logging.INFO, logger="rpcfw.registry"):
        await registrar.register([INSTANCE])
        lease = registrar.lease
        try:
            await wait_until(
                lambda: store.attempts > 3 and registrar.state == "registered", within=LIVENESS
            )
            assert registrar.lease == lease  # kept, not lost
        finally:
            await registrar.deregister()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("registry unreachable" in m for m in messages) == 1
    assert sum("answers again" in m for m in messages) == 1
    assert registrar.stats["failed_attempts"] == 3 and registrar.stats["unreachable"] == 1


def test_registrar_retry_delay_is_capped_by_a_third_of_the_ttl() -> None:
    registrar = LeaseRegistrar(LocalStore(), ttl=9, backoff=NEVER)
    registrar.lease = 7
    assert registrar._retry_delay(Backoff(NEVER)) == 3.0
    registrar.lease = None  # not registered yet: back soon after etcd is
    assert registrar._retry_delay(Backoff(NEVER)) == 3.0
    short = LeaseRegistrar(LocalStore(), ttl=9, backoff=BackoffConfig(initial=0.5, jitter=0.0))
    assert short._retry_delay(Backoff(short._backoff)) == 0.5


# -- the resolver ----------------------------------------------------------------------------
class WatchFailsOnce(LocalStore):
    """The first watch raises an error that is not an etcd error (a bug, a bad answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.watches = 0

    async def watch_prefix(
        self, prefix: str, start_revision: int
    ) -> AsyncIterator[list[WatchEvent]]:
        self.watches += 1
        if self.watches == 1:
            raise RuntimeError("unexpected answer")
        async for batch in super().watch_prefix(prefix, start_revision):
            yield batch


async def test_resolver_watch_that_fails_unexpectedly_is_logged_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: the watch loop raises RuntimeError. It is logged with its traceback, counted,
    and the watch starts again: a later registration still reaches the channel."""
    store = WatchFailsOnce()
    updates: list[list[int]] = []
    arrived = asyncio.Event()

    def listener(update: Sequence[Endpoint] | Exception) -> None:
        if not isinstance(update, Exception):
            updates.append(ports(update))
            arrived.set()

    resolver = ServiceRegistryResolver(
        parse_target("local:///echo.v1.Echo"),
        listener,
        store,
        backoff=BackoffConfig(initial=0.01, max_delay=0.01),
    )
    with caplog.at_level(logging.INFO, logger="rpcfw.resolver"):
        resolver.start()
        try:
            await wait_until(
                lambda: store.watches == 2 and resolver.state == "watching", within=LIVENESS
            )
            async with asyncio.timeout(LIVENESS):
                await store.put(instance_key(DEFAULT_PREFIX, INSTANCE), INSTANCE.to_json())
                while updates[-1:] != [[7000]]:
                    arrived.clear()
                    await arrived.wait()
        finally:
            await resolver.close()
    failed = [r for r in caplog.records if "watch loop failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert resolver.stats["failed"] == 1
    assert updates[0] == [] and updates[-1] == [7000]
