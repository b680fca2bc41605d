from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.policy.backoff import Backoff, BackoffConfig


def test_defaults_are_grpc_connection_backoff() -> None:
    config = BackoffConfig()
    assert (config.initial, config.multiplier, config.jitter, config.max_delay) == (
        1.0,
        1.6,
        0.2,
        120.0,
    )


def test_sequence_grows_by_multiplier_within_jitter() -> None:
    backoff = Backoff(random=random.Random(7).random)
    base = 1.0
    for _ in range(8):
        delay = backoff.next_delay()
        assert base * 0.8 <= delay <= base * 1.2
        base *= 1.6


def test_without_jitter_the_sequence_is_exact_and_capped() -> None:
    backoff = Backoff(BackoffConfig(initial=1.0, multiplier=2.0, jitter=0.0, max_delay=10.0))
    assert [backoff.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_capped_at_max_delay_with_jitter_around_it() -> None:
    backoff = Backoff(random=random.Random(1).random)
    delays = [backoff.next_delay() for _ in range(40)]
    assert all(d <= 120.0 * 1.2 for d in delays)
    assert all(d >= 120.0 * 0.8 for d in delays[-10:])  # 1.6**11 > 120: capped from then on


def test_reset_starts_over() -> None:
    backoff = Backoff(random=lambda: 0.5)  # 0.5 -> no jitter
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6, 2.56])
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == pytest.approx(1.0)


def test_jitter_extremes_use_the_injected_random() -> None:
    assert Backoff(random=lambda: 0.0).next_delay() == pytest.approx(0.8)
    assert Backoff(random=lambda: 0.999999).next_delay() == pytest.approx(1.2, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"initial": 5.0, "max_delay": 1.0},
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffConfig(**kwargs)


@given(
    initial=st.floats(0.01, 10.0),
    multiplier=st.floats(1.0, 3.0),
    jitter=st.floats(0.0, 1.0),
    steps=st.integers(1, 30),
    randoms=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=30, max_size=30),
)
def test_every_delay_is_within_jitter_of_its_capped_base(
    initial: float, multiplier: float, jitter: float, steps: int, randoms: list[float]
) -> None:
    config = BackoffConfig(initial=initial, multiplier=multiplier, jitter=jitter, max_delay=60.0)
    feed = iter(randoms)
    backoff = Backoff(config, random=lambda: next(feed))
    base = initial
    for _ in range(steps):
        delay = backoff.next_delay()
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
        assert delay >= 0.0
        base = min(base * multiplier, 60.0)
