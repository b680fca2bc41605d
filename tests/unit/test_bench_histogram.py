from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.bench.histogram import SUB_BITS, LatencyHistogram, bucket_bounds, bucket_index

PRECISION = 1 / 2**SUB_BITS


def nearest_rank(values: list[int], percent: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@given(st.integers(min_value=0, max_value=10**13))
def test_a_value_lies_within_its_bucket(value: int) -> None:
    low, high = bucket_bounds(bucket_index(value))
    assert low <= value <= high
    assert high - low <= max(0, low * PRECISION)


def test_buckets_are_contiguous() -> None:
    previous_high = -1
    for index in range(40 * 2**SUB_BITS):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high


@given(
    st.lists(st.integers(min_value=0, max_value=60 * 10**9), min_size=1, max_size=400),
    st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0, 0.1]),
)
def test_percentiles_match_a_sorted_reference(values: list[int], percent: float) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record_ns(value)
    expected = nearest_rank(values, percent)
    got = histogram.percentile_ns(percent)
    assert abs(got - expected) <= expected * PRECISION
    assert histogram.min_ns == min(values)
    assert histogram.max_ns == max(values)
    assert histogram.percentile_ns(100) == max(values)
    assert histogram.count == len(values)
    assert histogram.mean_ns == pytest.approx(sum(values) / len(values))


@given(
    st.lists(st.integers(min_value=0, max_value=10**10), max_size=50),
    st.lists(st.integers(min_value=0, max_value=10**10), max_size=50),
)
def test_merge_equals_recording_everything(left: list[int], right: list[int]) -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in left:
        a.record_ns(value)
        both.record_ns(value)
    for value in right:
        b.record_ns(value)
        both.record_ns(value)
    a.merge(b)
    assert (a.count, a.min_ns, a.max_ns, a.total_ns) == (
        both.count,
        both.min_ns,
        both.max_ns,
        both.total_ns,
    )
    for percent in (50.0, 99.0):
        assert a.percentile_ns(percent) == both.percentile_ns(percent)


def test_record_in_seconds_and_empty_histogram() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentile_ns(99) == 0
    assert histogram.text_buckets() == []
    histogram.record(0.0015)
    assert histogram.min_ns == 1_500_000
    assert histogram.percentiles_ms([50, 99.9]) == {
        "p50": pytest.approx(1.5, rel=PRECISION),
        "p99.9": pytest.approx(1.5, rel=PRECISION),
    }
    with pytest.raises(ValueError):
        histogram.percentile_ns(101)


def test_text_histogram_counts_every_sample() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 101):
        histogram.record(ms / 1000)
    buckets = histogram.text_buckets(rows=10)
    assert len(buckets) == 10
    assert sum(b.count for b in buckets) == 100
    assert buckets[-1].upper_ns == 100_000_000
    assert all(8 <= b.count <= 12 for b in buckets)
    text = histogram.render_text(rows=10)
    assert len(text.splitlines()) == 10
    assert "100.000 [" in text
