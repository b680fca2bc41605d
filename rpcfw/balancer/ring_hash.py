"""ring_hash: consistent hashing of a per-call key (``PickInfo.hash_key``) onto the READY
subchannels, with virtual nodes.

Each endpoint owns ``virtual_nodes * weight`` points on a 64-bit ring (its weight from the
resolver; a weight of 0 gives no points unless every weight is 0), placed by a stable hash of
``"host:port#i"`` (blake2b, the same in every process, unlike ``hash()``). A key goes to the
first point at or after its own hash (binary search). The ring holds only READY subchannels:
when one leaves, only its keys move (to the next points), and a newcomer only takes keys.
Calls without a key land on a random point. If the ring would exceed ``max_ring_size`` points
the counts are scaled down (which then moves some keys between the others too).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import OutlierDetectionConfig
from .base import BalancerHelper, Endpoint, Picker, PickInfo, PickResult, SubchannelLike
from .subchannel_list import DEFAULT_OUTLIER, DEFAULT_OUTLIER_DETECTION, SubchannelListBalancer

__all__ = ["RingHashBalancer", "RingHashConfig", "RingHashPicker", "hash_key"]


@dataclass(frozen=True, slots=True)
class RingHashConfig:
    """Settings of ``ring_hash``: ``virtual_nodes`` points per unit of weight and at most
    ``max_ring_size`` points on the ring."""

    virtual_nodes: int = 100
    max_ring_size: int = 1 << 20

    def __post_init__(self) -> None:
        if self.virtual_nodes < 1:
            raise ValueError("virtual_nodes must be >= 1")
        if self.max_ring_size < 1:
            raise ValueError("max_ring_size must be >= 1")


def hash_key(data: bytes) -> int:
    """A stable 64-bit hash of ``data``."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class RingHashPicker(Picker):
    """Sends a call to the subchannel owning the first ring point at or after the hash of its
    ``hash_key`` (a random point without one)."""

    __slots__ = ("_hashes", "_random", "_results")

    def __init__(
        self, hashes: Sequence[int], results: Sequence[PickResult], rng: random.Random
    ) -> None:
        if not hashes or len(hashes) != len(results):
            raise ValueError("a ring needs matching, non-empty hashes and results")
        self._hashes = list(hashes)
        self._results = tuple(results)
        self._random = rng.getrandbits

    def pick(self, info: PickInfo) -> PickResult | None:
        key = info.hash_key
        point = self._random(64) if key is None else hash_key(key)
        index = bisect.bisect_left(self._hashes, point)
        return self._results[index if index < len(self._results) else 0]


def _point_counts(weights: list[int], config: RingHashConfig) -> list[int]:
    if not any(w > 0 for w in weights):
        weights = [1] * len(weights)
    counts = [w * config.virtual_nodes for w in weights]
    total = sum(counts)
    if total > config.max_ring_size:
        scale = config.max_ring_size / total
        counts = [0 if c == 0 else max(1, int(c * scale)) for c in counts]
    return counts


@functools.lru_cache(maxsize=4096)
def _endpoint_points(name: str, count: int) -> tuple[int, ...]:
    """An endpoint's ring points (cached: rebuilding a ring only re-sorts)."""
    return tuple(hash_key(f"{name}#{i}".encode()) for i in range(count))


def build_ring(
    endpoints: Sequence[Endpoint], config: RingHashConfig
) -> tuple[list[int], list[int]]:
    """Sorted ring points and, for each, the index of its endpoint."""
    counts = _point_counts([e.weight for e in endpoints], config)
    points: list[tuple[int, str, int]] = []
    for index, (endpoint, count) in enumerate(zip(endpoints, counts, strict=True)):
        name = str(endpoint)
        points.extend((point, name, index) for point in _endpoint_points(name, count))
    points.sort()  # ties (vanishingly rare) broken by address: the same in every process
    return [p[0] for p in points], [p[2] for p in points]


class RingHashBalancer(SubchannelListBalancer):
    """The ``ring_hash`` policy: consistent hashing of each call's ``hash_key`` onto the READY
    subchannels, with virtual nodes (see the module docstring)."""

    def __init__(
        self,
        helper: BalancerHelper,
        *,
        config: RingHashConfig | None = None,
        outlier: OutlierConfig | None = DEFAULT_OUTLIER,
        outlier_detection: OutlierDetectionConfig | None = DEFAULT_OUTLIER_DETECTION,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        super().__init__(
            helper, outlier=outlier, outlier_detection=outlier_detection, rng=self._rng
        )
        self.config = config if config is not None else RingHashConfig()

    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        hashes, owners = build_ring([self.endpoint_of(sc) for sc in ready], self.config)
        results = [self.pick_result(sc) for sc in ready]
        return RingHashPicker(hashes, [results[i] for i in owners], self._rng)
