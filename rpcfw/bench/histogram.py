"""Latency recording: an HDR-like log-linear histogram of nanosecond values.

Every power-of-two range is split into ``2**SUB_BITS`` equal buckets, so a recorded value is
known to within ``1 / 2**SUB_BITS`` (under 0.8 %) of itself, whatever its magnitude, in
constant memory per decade. Values below ``2**SUB_BITS`` ns are exact. ``min``, ``max``,
``count`` and ``mean`` are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SUB_BITS", "LatencyHistogram", "TextBucket", "bucket_bounds", "bucket_index"]

SUB_BITS = 7
_SUB = 1 << SUB_BITS


def bucket_index(value: int) -> int:
    """The bucket holding ``value`` (a non-negative integer, nanoseconds)."""
    if value < _SUB:
        return value
    shift = value.bit_length() - SUB_BITS - 1
    return (shift + 1) * _SUB + (value >> shift) - _SUB


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest value bucket ``index`` holds (inclusive)."""
    if index < _SUB:
        return index, index
    shift = index // _SUB - 1
    mantissa = index % _SUB + _SUB
    return mantissa << shift, ((mantissa + 1) << shift) - 1


@dataclass(frozen=True, slots=True)
class TextBucket:
    """One row of the rendered histogram: values up to ``upper_ns`` (and above the previous)."""

    upper_ns: int
    count: int


class LatencyHistogram:
    """Record latencies (seconds or nanoseconds) and read percentiles back."""

    __slots__ = ("_counts", "count", "max_ns", "min_ns", "total_ns")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record(self, seconds: float) -> None:
        """Record one latency in seconds (negative values count as 0)."""
        self.record_ns(max(0, round(seconds * 1e9)))

    def record_ns(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"negative latency {value}")
        index = bucket_index(value)
        self._counts[index] = self._counts.get(index, 0) + 1
        if not self.count or value < self.min_ns:
            self.min_ns = value
        if value > self.max_ns:
            self.max_ns = value
        self.count += 1
        self.total_ns += value

    def merge(self, other: LatencyHistogram) -> None:
        for index, count in other._counts.items():
            self._counts[index] = self._counts.get(index, 0) + count
        if other.count:
            if not self.count or other.min_ns < self.min_ns:
                self.min_ns = other.min_ns
            self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.total_ns += other.total_ns

    @property
    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else 0.0

    def _buckets(self) -> Iterator[tuple[int, int]]:
        for index in sorted(self._counts):
            yield index, self._counts[index]

    def percentile_ns(self, percent: float) -> int:
        """The nearest-rank ``percent`` percentile (0 < percent <= 100), within the bucket
        precision; 0 when nothing was recorded."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percentile {percent} is not within 0..100")
        if not self.count:
            return 0
        rank = max(1, math.ceil(percent / 100 * self.count))
        if rank >= self.count:
            return self.max_ns
        if rank == 1:
            return self.min_ns
        seen = 0
        for index, count in self._buckets():
            seen += count
            if seen >= rank:
                low, high = bucket_bounds(index)
                middle = (low + high) // 2
                return min(max(middle, self.min_ns), self.max_ns)
        return self.max_ns

    def percentiles_ms(self, percents: Iterable[float]) -> dict[str, float]:
        """``{"p50": ms, ...}`` for each percent (``p99.9`` style keys)."""
        return {f"p{p:g}": self.percentile_ns(p) / 1e6 for p in percents}

    def text_buckets(self, rows: int = 10) -> list[TextBucket]:
        """``rows`` equal-width buckets from min to max (ghz's histogram)."""
        if not self.count:
            return []
        low, high = self.min_ns, self.max_ns
        if high == low:
            return [TextBucket(high, self.count)]
        width = (high - low) / rows
        uppers = [round(low + width * (i + 1)) for i in range(rows)]
        counts = [0] * rows
        for index, count in self._buckets():
            bucket_low, bucket_high = bucket_bounds(index)
            value = min(max((bucket_low + bucket_high) // 2, low), high)
            row = min(rows - 1, int((value - low) / width))
            counts[row] += count
        uppers[-1] = high
        return [TextBucket(u, c) for u, c in zip(uppers, counts, strict=True)]

    def render_text(self, rows: int = 10, width: int = 40) -> str:
        """The histogram as text lines: ``upper_ms [count] |bar``."""
        buckets = self.text_buckets(rows)
        if not buckets:
            return "  (no samples)"
        peak = max(b.count for b in buckets) or 1
        labels = [f"{b.upper_ns / 1e6:.3f}" for b in buckets]
        label_width = max(len(label) for label in labels)
        count_width = max(len(str(b.count)) for b in buckets)
        lines = []
        for label, bucket in zip(labels, buckets, strict=True):
            bar = "∎" * round(bucket.count / peak * width)
            lines.append(f"  {label:>{label_width}} [{bucket.count:>{count_width}}] |{bar}")
        return "\n".join(lines)
