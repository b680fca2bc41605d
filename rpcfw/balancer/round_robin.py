"""round_robin: rotate over the READY subchannels, one call each in a fixed cycle.

Each new picker starts at a random offset (so many clients that rebuild at the same moment do
not all hit the same endpoint first); pass a seeded ``rng`` for reproducible tests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import OutlierDetectionConfig
from .base import BalancerHelper, Picker, PickInfo, PickResult, SubchannelLike
from .subchannel_list import DEFAULT_OUTLIER, DEFAULT_OUTLIER_DETECTION, SubchannelListBalancer

__all__ = ["RoundRobinBalancer", "RoundRobinPicker"]


class RoundRobinPicker(Picker):
    """Cycles over fixed results; ``start`` is the index of the first pick."""

    __slots__ = ("_next", "_results")

    def __init__(self, results: Sequence[PickResult], start: int = 0) -> None:
        if not results:
            raise ValueError("RoundRobinPicker needs at least one result")
        self._results = tuple(results)
        self._next = start % len(self._results)

    def pick(self, info: PickInfo) -> PickResult | None:
        index = self._next
        results = self._results
        self._next = index + 1 if index + 1 < len(results) else 0
        return results[index]


class RoundRobinBalancer(SubchannelListBalancer):
    """The ``round_robin`` policy: one call each to the READY subchannels in a fixed cycle, starting
    at a random offset; with outlier ejection and detection."""

    def __init__(
        self,
        helper: BalancerHelper,
        *,
        outlier: OutlierConfig | None = DEFAULT_OUTLIER,
        outlier_detection: OutlierDetectionConfig | None = DEFAULT_OUTLIER_DETECTION,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        super().__init__(
            helper, outlier=outlier, outlier_detection=outlier_detection, rng=self._rng
        )

    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        results = [self.pick_result(subchannel) for subchannel in ready]
        return RoundRobinPicker(results, self._rng.randrange(len(results)))
