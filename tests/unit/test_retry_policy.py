"""Service config parsing / validation (gRFC A6) and the IO-free retry and hedging decisions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw import Status
from rpcfw.policy import (
    HedgingPolicy,
    MethodConfig,
    RetryPolicy,
    RetryThrottling,
    ServiceConfig,
)
from rpcfw.policy.retry import (
    HedgingState,
    Pushback,
    RetryBuffer,
    RetryState,
    RetryThrottle,
    parse_pushback,
)
from rpcfw.policy.service_config import parse_duration

RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", 10],
}


def policy(**overrides: object) -> RetryPolicy:
    return RetryPolicy.from_json({**RETRY, **overrides})


# -- parsing and validation ---------------------------------------------------------------
def test_full_config_from_json_text() -> None:
    config = ServiceConfig.from_json(
        json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": "pkg.Svc", "method": "M"}],
                        "retryPolicy": RETRY,
                        "timeout": "1.5s",
                    },
                    {
                        "name": [{"service": "pkg.Svc"}],
                        "hedgingPolicy": {
                            "maxAttempts": 3,
                            "hedgingDelay": "0.05s",
                            "nonFatalStatusCodes": ["UNAVAILABLE"],
                        },
                    },
                    {"name": [{}], "timeout": "9s", "retryNonIdempotent": True},
                ],
                "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
            }
        )
    )
    exact = config.method_config("/pkg.Svc/M")
    assert exact is not None and exact.timeout == 1.5 and exact.retry_policy is not None
    assert exact.retry_policy.retryable_status_codes == {Status.UNAVAILABLE, Status.ABORTED}
    assert exact.retry_policy.initial_backoff == pytest.approx(0.1)
    service = config.method_config("/pkg.Svc/Other")
    assert service is not None and service.hedging_policy == HedgingPolicy(
        3, 0.05, frozenset({Status.UNAVAILABLE})
    )
    default = config.method_config("/other.Svc/X")
    assert default == MethodConfig(timeout=9.0, retry_non_idempotent=True)
    assert config.retry_throttling == RetryThrottling(10, 0.1)


def test_no_default_means_no_config() -> None:
    config = ServiceConfig.from_json({"methodConfig": [{"name": [{"service": "a.B"}]}]})
    assert config.method_config("/c.D/M") is None
    assert config.method_config("/a.B/M") == MethodConfig()


def test_max_attempts_capped_at_five() -> None:
    assert policy(maxAttempts=9).max_attempts == 5
    assert HedgingPolicy(7).max_attempts == 5


@pytest.mark.parametrize(
    "overrides",
    [
        {"maxAttempts": 1},
        {"maxAttempts": "3"},
        {"initialBackoff": "0s"},
        {"maxBackoff": "0s"},
        {"initialBackoff": "-1s"},
        {"initialBackoff": "fast"},
        {"backoffMultiplier": 0},
        {"retryableStatusCodes": []},
        {"retryableStatusCodes": ["NOPE"]},
        {"retryableStatusCodes": [99]},
        {"retryableStatusCodes": ["OK"]},
    ],
)
def test_invalid_retry_policy(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        policy(**overrides)


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[]",
        {"methodConfig": [{"name": [{"service": "a.B"}], "retryPolicy": RETRY,
                           "hedgingPolicy": {"maxAttempts": 2}}]},
        {"methodConfig": [{"name": [{"method": "M"}]}]},
        {"methodConfig": [{"name": [{"service": "a.B"}]}, {"name": [{"service": "a.B"}]}]},
        {"methodConfig": [{"name": [{}], "retryNonIdempotent": "yes"}]},
        {"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2,
                                                           "hedgingDelay": "-1s"}}]},
        {"retryThrottling": {"maxTokens": 0, "tokenRatio": 0.1}},
        {"retryThrottling": {"maxTokens": 1001, "tokenRatio": 0.1}},
        {"retryThrottling": {"maxTokens": 10, "tokenRatio": 0}},
    ],
)  # fmt: skip
def test_invalid_service_config(data: object) -> None:
    with pytest.raises(ValueError):
        ServiceConfig.from_json(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("0.5s", 0.5), ("1.000000001s", 1.000000001), (2, 2.0)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


# -- backoff -------------------------------------------------------------------------------
@given(
    initial=st.floats(0.001, 10),
    multiplier=st.floats(0.1, 10),
    maximum=st.floats(0.001, 100),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=4, max_size=4),
)
def test_backoff_within_bounds(
    initial: float, multiplier: float, maximum: float, draws: list[float]
) -> None:
    retry = RetryPolicy(5, initial, maximum, multiplier, frozenset({Status.UNAVAILABLE}))
    values = iter(draws)
    state = RetryState(retry, random=lambda: next(values))
    for n in range(1, 5):
        decision = state.on_failure(Status.UNAVAILABLE)
        assert decision.retry
        ceiling = min(initial * multiplier ** (n - 1), maximum)
        assert 0 <= decision.delay <= ceiling
        assert decision.delay == pytest.approx(draws[n - 1] * ceiling)
    assert not state.on_failure(Status.UNAVAILABLE).retry  # 5 attempts made
    assert state.attempts == 5


def test_decisions() -> None:
    state = RetryState(policy(), random=lambda: 1.0)
    assert not state.on_failure(Status.INTERNAL).retry  # not retryable
    assert state.attempts == 1
    assert not state.on_failure(Status.UNAVAILABLE, committed=True).retry
    assert [state.on_failure(Status.ABORTED).delay for _ in range(3)] == pytest.approx(
        [0.1, 0.2, 0.4]
    )
    assert not state.on_failure(Status.UNAVAILABLE).retry  # maxAttempts 4 reached


# -- pushback ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["250"], Pushback(delay=0.25)),
        (["0"], Pushback(delay=0.0)),
        (["-1"], Pushback(stop=True)),
        (["soon"], Pushback(stop=True)),
        (["1.5"], Pushback(stop=True)),
        (["1", "2"], Pushback(stop=True)),
    ],
)
def test_parse_pushback(values: list[str], expected: Pushback | None) -> None:
    assert parse_pushback(values) == expected


def test_pushback_sets_delay_and_resets_backoff() -> None:
    state = RetryState(policy(maxAttempts=5), random=lambda: 1.0)
    assert state.on_failure(Status.UNAVAILABLE).delay == pytest.approx(0.1)
    assert state.on_failure(Status.UNAVAILABLE).delay == pytest.approx(0.2)
    assert state.on_failure(Status.UNAVAILABLE, Pushback(delay=3.0)).delay == 3.0
    assert state.on_failure(Status.UNAVAILABLE).delay == pytest.approx(0.1)  # reset


def test_negative_pushback_stops() -> None:
    state = RetryState(policy())
    decision = state.on_failure(Status.UNAVAILABLE, Pushback(stop=True))
    assert not decision.retry and "pushback" in decision.reason


# -- throttling ----------------------------------------------------------------------------
def test_throttle_bucket() -> None:
    throttle = RetryThrottle(RetryThrottling(10, 0.5))
    assert throttle.tokens == 10 and throttle.allows_retry
    for _ in range(4):
        throttle.on_failure()
    assert throttle.tokens == 6 and throttle.allows_retry
    throttle.on_failure()
    assert throttle.tokens == 5 and not throttle.allows_retry  # not > maxTokens / 2
    throttle.on_success()
    assert throttle.tokens == 5.5 and throttle.allows_retry
    for _ in range(20):
        throttle.on_success()
    assert throttle.tokens == 10  # never above maxTokens
    for _ in range(50):
        throttle.on_failure()
    assert throttle.tokens == 0


@given(st.lists(st.booleans(), max_size=200))
def test_throttle_stays_in_range(outcomes: list[bool]) -> None:
    throttle = RetryThrottle(RetryThrottling(7, 0.3))
    for ok in outcomes:
        throttle.on_success() if ok else throttle.on_failure()
        assert 0 <= throttle.tokens <= 7
        assert throttle.allows_retry == (throttle.tokens > 3.5)


def test_throttled_retry_state() -> None:
    throttle = RetryThrottle(RetryThrottling(4, 1))
    first, second = RetryState(policy(), throttle), RetryState(policy(), throttle)
    assert first.on_failure(Status.UNAVAILABLE).retry  # tokens 3 > 2
    decision = second.on_failure(Status.UNAVAILABLE)  # tokens 2: not > 2
    assert not decision.retry and decision.reason == "throttled"
    assert not second.on_failure(Status.INTERNAL).retry and throttle.tokens == 2  # not counted


# -- hedging -------------------------------------------------------------------------------
def test_hedging_state() -> None:
    state = HedgingState(HedgingPolicy(3, 0.1, frozenset({Status.UNAVAILABLE})))
    for _ in range(3):
        assert state.can_start()
        state.on_started()
    assert not state.can_start()
    assert state.on_failure(Status.UNAVAILABLE) == (False, 0.0)
    assert state.on_failure(Status.UNAVAILABLE, Pushback(delay=0.5)) == (False, 0.5)
    assert state.on_failure(Status.INTERNAL) == (True, 0.0)
    fresh = HedgingState(HedgingPolicy(3, 0.1, frozenset({Status.UNAVAILABLE})))
    fresh.on_started()
    fresh.on_failure(Status.UNAVAILABLE, Pushback(stop=True))
    assert not fresh.can_start()


def test_hedging_throttled() -> None:
    throttle = RetryThrottle(RetryThrottling(2, 1))
    state = HedgingState(HedgingPolicy(3, 0, frozenset({Status.UNAVAILABLE})), throttle)
    state.on_started()
    state.on_failure(Status.UNAVAILABLE)  # tokens 1: not > 1
    assert not state.can_start()


def test_retry_buffer_limits_per_call_and_per_channel() -> None:
    """A call may keep bytes while both its own total and the channel's stay within limits;
    a refusal reserves nothing; released bytes can be kept again."""
    buffer = RetryBuffer(per_call=100, total=150)
    assert buffer.reserve(0, 60) and buffer.used == 60  # call A holds 60
    assert not buffer.reserve(60, 41) and buffer.used == 60  # A would hold 101 > 100
    assert buffer.reserve(0, 90) and buffer.used == 150  # call B holds 90: channel full
    assert not buffer.reserve(0, 1) and buffer.used == 150  # call C: past the channel total
    buffer.release(60)  # A committed
    assert buffer.reserve(0, 1) and buffer.used == 91
    with pytest.raises(ValueError):
        RetryBuffer(per_call=-1)
