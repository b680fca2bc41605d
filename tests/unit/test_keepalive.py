"""keepalive_step and jittered_age: the keepalive decisions, without timers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.transport.keepalive import (
    KeepaliveAction,
    KeepaliveConfig,
    jittered_age,
    keepalive_step,
)

CFG = KeepaliveConfig(time=10.0, timeout=2.0)
PERMIT = KeepaliveConfig(time=10.0, timeout=2.0, permit_without_calls=True)


def test_a_recently_active_connection_waits_until_a_full_period_after_the_last_read() -> None:
    assert keepalive_step(CFG, 105.0, 100.0, None, True) == (KeepaliveAction.WAIT, 110.0)


def test_a_quiet_connection_with_calls_sends_a_ping_and_waits_for_the_timeout() -> None:
    assert keepalive_step(CFG, 111.0, 100.0, None, True) == (KeepaliveAction.SEND_PING, 113.0)


def test_a_quiet_connection_without_calls_stays_dormant_unless_permitted() -> None:
    action, wake = keepalive_step(CFG, 111.0, 100.0, None, False)
    assert action is KeepaliveAction.WAIT and wake == 121.0
    assert keepalive_step(PERMIT, 111.0, 100.0, None, False)[0] is KeepaliveAction.SEND_PING


def test_an_unanswered_ping_closes_the_connection_at_the_timeout() -> None:
    assert keepalive_step(CFG, 112.0, 100.0, 111.0, True) == (KeepaliveAction.WAIT, 113.0)
    assert keepalive_step(CFG, 113.0, 100.0, 111.0, True)[0] is KeepaliveAction.CLOSE


def test_any_frame_after_the_ping_counts_as_its_answer() -> None:
    action, wake = keepalive_step(CFG, 113.5, 111.5, 111.0, True)
    assert action is KeepaliveAction.WAIT and wake == 121.5


@given(
    now=st.floats(0, 1e6),
    quiet=st.floats(0, 1e4),
    calls=st.booleans(),
    outstanding=st.none() | st.floats(0, 100),
)
def test_the_next_check_is_never_in_the_past(
    now: float, quiet: float, calls: bool, outstanding: float | None
) -> None:
    last_read = now - quiet
    ping_sent_at = None if outstanding is None else now - outstanding
    action, wake = keepalive_step(CFG, now, last_read, ping_sent_at, calls)
    assert wake >= now or action is KeepaliveAction.CLOSE


def test_keepalive_config_rejects_non_positive_periods() -> None:
    with pytest.raises(ValueError):
        KeepaliveConfig(time=0)
    with pytest.raises(ValueError):
        KeepaliveConfig(time=1, timeout=-1)


def test_jittered_age_stays_within_ten_percent_and_varies() -> None:
    rng = random.Random(7)
    ages = {jittered_age(100.0, rng) for _ in range(200)}
    assert all(90.0 <= age <= 110.0 for age in ages)
    assert len(ages) > 100
