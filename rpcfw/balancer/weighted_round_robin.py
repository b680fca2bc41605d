"""weighted_round_robin: smooth weighted round robin over the READY subchannels, with weights
from the resolver (``Endpoint.weight``; 0 means no traffic unless every weight is 0).

The picker precomputes one period of nginx's smooth weighted round robin (weights divided by
their gcd), so a pick is one index step: O(1), no allocation, and a new picker starts at a
random point of the period. Over each period every subchannel gets exactly its weight's share,
spread out. Very long periods (many endpoints with large, coprime weights) use an equivalent
stride schedule, and beyond ``max_schedule`` the weights are scaled down to fit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import OutlierDetectionConfig
from .base import BalancerHelper, Picker, SubchannelLike
from .round_robin import RoundRobinPicker
from .subchannel_list import DEFAULT_OUTLIER, DEFAULT_OUTLIER_DETECTION, SubchannelListBalancer

__all__ = [
    "WeightedRoundRobinBalancer",
    "WeightedRoundRobinConfig",
    "smooth_weighted_schedule",
]


@dataclass(frozen=True, slots=True)
class WeightedRoundRobinConfig:
    """``max_schedule``: the longest period kept (weights are scaled down beyond it)."""

    max_schedule: int = 100_000

    def __post_init__(self) -> None:
        if self.max_schedule < 1:
            raise ValueError("max_schedule must be >= 1")


# nginx's algorithm costs period * n steps to build; beyond this an O(period log period) stride
# schedule (same counts, slightly less even interleaving) is built instead
_NGINX_WORK = 200_000


def _fit(weights: list[int], max_schedule: int) -> list[int]:
    """Weights reduced by their gcd, scaled down when one period would be too long."""
    if not any(w > 0 for w in weights):
        weights = [1] * len(weights)
    g = math.gcd(*weights)
    weights = [w // g for w in weights]
    total = sum(weights)
    if total <= max_schedule:
        return weights
    scale = max_schedule / total
    return [0 if w == 0 else max(1, round(w * scale)) for w in weights]


def smooth_weighted_schedule(weights: Sequence[int], max_schedule: int = 100_000) -> list[int]:
    """One period of smooth weighted round robin: indexes into ``weights``, each appearing
    (weight / gcd) times. Weights of 0 never appear unless all are 0 (then all count as 1).

    nginx's algorithm: each step adds every weight to its running credit, picks the largest
    credit (first on ties) and takes the total off the winner.
    """
    fitted = _fit(list(weights), max_schedule)
    total = sum(fitted)
    if total * len(fitted) > _NGINX_WORK:
        return _stride_schedule(fitted)
    credit = [0] * len(fitted)
    indexes = range(len(fitted))
    schedule: list[int] = []
    for _ in range(total):
        best = -1
        for i in indexes:
            credit[i] += fitted[i]
            if best < 0 or credit[i] > credit[best]:
                best = i
        credit[best] -= total
        schedule.append(best)
    return schedule


def _stride_schedule(weights: list[int]) -> list[int]:
    """Each index i at the evenly spaced points (k + 1/2) / w_i of the period, in order."""
    points = [((k + 0.5) / w, i) for i, w in enumerate(weights) for k in range(w)]
    points.sort()
    return [i for _, i in points]


class WeightedRoundRobinBalancer(SubchannelListBalancer):
    """The ``weighted_round_robin`` policy: smooth weighted round robin over the READY subchannels,
    each getting its ``Endpoint.weight`` share (see the module docstring)."""

    def __init__(
        self,
        helper: BalancerHelper,
        *,
        config: WeightedRoundRobinConfig | None = None,
        outlier: OutlierConfig | None = DEFAULT_OUTLIER,
        outlier_detection: OutlierDetectionConfig | None = DEFAULT_OUTLIER_DETECTION,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        super().__init__(
            helper, outlier=outlier, outlier_detection=outlier_detection, rng=self._rng
        )
        self.config = config if config is not None else WeightedRoundRobinConfig()

    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        weights = [self.endpoint_of(subchannel).weight for subchannel in ready]
        results = [self.pick_result(subchannel) for subchannel in ready]
        schedule = smooth_weighted_schedule(weights, self.config.max_schedule)
        return RoundRobinPicker([results[i] for i in schedule], self._rng.randrange(len(schedule)))
