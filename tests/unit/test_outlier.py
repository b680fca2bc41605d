from __future__ import annotations

import pytest

from rpcfw.policy.outlier import OutlierConfig, OutlierEjector

KEYS = ["a", "b", "c", "d"]


def make(**kwargs: float) -> OutlierEjector:
    ejector = OutlierEjector(OutlierConfig(**kwargs))  # type: ignore[arg-type]
    ejector.set_keys(KEYS)
    return ejector


def fail(ejector: OutlierEjector, key: str, times: int, now: float) -> list[bool]:
    return [ejector.record(key, True, now) for _ in range(times)]


def test_five_consecutive_failures_eject() -> None:
    ejector = make()
    assert fail(ejector, "a", 5, 0.0) == [False] * 4 + [True]
    assert ejector.is_ejected("a", 0.0)
    assert not ejector.is_ejected("b", 0.0)


def test_threshold_is_configurable() -> None:
    ejector = make(consecutive_failures=2)
    assert fail(ejector, "a", 2, 0.0) == [False, True]


def test_a_success_resets_the_count() -> None:
    ejector = make()
    fail(ejector, "a", 4, 0.0)
    ejector.record("a", False, 0.0)
    assert fail(ejector, "a", 4, 0.0) == [False] * 4
    assert not ejector.is_ejected("a", 0.0)


def test_ejection_lasts_the_base_time_then_ends() -> None:
    ejector = make()
    fail(ejector, "a", 5, 10.0)
    assert ejector.next_change(10.0) == 11.0
    assert ejector.is_ejected("a", 10.999)
    assert not ejector.is_ejected("a", 11.0)
    assert ejector.next_change(11.0) is None


def test_repeated_ejections_double_up_to_the_max() -> None:
    ejector = make(max_ejection_time=5.0)
    now = 0.0
    durations = []
    for _ in range(5):
        fail(ejector, "a", 5, now)
        until = ejector.next_change(now)
        assert until is not None
        durations.append(until - now)
        now = until
    assert durations == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_count_restarts_after_an_ejection_ends() -> None:
    ejector = make()
    fail(ejector, "a", 5, 0.0)
    assert fail(ejector, "a", 4, 1.0) == [False] * 4  # fresh count after release
    assert not ejector.is_ejected("a", 1.0)


def test_results_while_ejected_are_ignored() -> None:
    ejector = make()
    fail(ejector, "a", 5, 0.0)
    assert fail(ejector, "a", 10, 0.5) == [False] * 10
    assert ejector.next_change(0.5) == 1.0


def test_backoff_resets_after_staying_healthy() -> None:
    ejector = make(recovery_period=30.0)
    fail(ejector, "a", 5, 0.0)  # 1 s
    fail(ejector, "a", 5, 1.0)  # 2 s, released at 3
    fail(ejector, "a", 5, 3.0 + 30.0)  # healthy 30 s: back to 1 s
    assert ejector.next_change(33.0) == 34.0


def test_never_more_than_max_ejection_percent() -> None:
    ejector = make()  # 4 keys, 50 % -> at most 2
    assert fail(ejector, "a", 5, 0.0)[-1]
    assert fail(ejector, "b", 5, 0.0)[-1]
    assert fail(ejector, "c", 5, 0.0) == [False] * 5
    assert not ejector.is_ejected("c", 0.0)
    # once a is back, c's next failure ejects it
    assert ejector.record("c", True, 1.0)


def test_a_lone_endpoint_is_never_ejected() -> None:
    ejector = OutlierEjector()
    ejector.set_keys(["only"])
    assert fail(ejector, "only", 20, 0.0) == [False] * 20


def test_veto_defers_the_ejection_to_the_next_failure() -> None:
    ejector = make()
    allowed = False
    results = [ejector.record("a", True, 0.0, can_eject=lambda: allowed) for _ in range(6)]
    assert results == [False] * 6
    allowed = True
    assert ejector.record("a", True, 0.0, can_eject=lambda: allowed)


def test_set_keys_forgets_removed_endpoints() -> None:
    ejector = make()
    fail(ejector, "a", 5, 0.0)
    ejector.set_keys(["b", "c", "d", "e"])
    assert not ejector.is_ejected("a", 0.0)
    assert ejector.next_change(0.0) is None


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        OutlierConfig(consecutive_failures=0)
    with pytest.raises(ValueError):
        OutlierConfig(base_ejection_time=10.0, max_ejection_time=1.0)
    with pytest.raises(ValueError):
        OutlierConfig(max_ejection_percent=150.0)
