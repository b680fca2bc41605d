"""p2c: power of two choices over the READY subchannels (Finagle / Kratos style).

Each pick draws two distinct READY subchannels at random and takes the cheaper one:
``cost = EWMA latency * (in-flight + 1)``. Both are tracked per endpoint by the balancer (they
survive picker rebuilds) and updated from each call's ``on_done``:

- in-flight goes up at the pick and down exactly once in that pick's ``on_done``;
- the EWMA decays with time (``decay`` seconds time constant): a sample after a gap of ``dt``
  weighs ``1 - exp(-dt / decay)``; the first sample of an endpoint is taken as is;
- an endpoint with no sample yet costs 0 while it has no call in flight (so it is probed at
  once) and ``probe_penalty`` while its probe is outstanding;
- connection failures, and ``on_done(0.0, False, False)`` (a pick that was not used), release the
  in-flight slot without a latency sample (outlier ejection deals with failures);
- the loser of a draw is taken anyway when it has not been picked for ``force_pick_after``
  seconds, so a once-slow endpoint gets a fresh sample instead of being starved forever.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import OutlierDetectionConfig
from .base import BalancerHelper, OnDone, Picker, PickInfo, PickResult, SubchannelLike
from .subchannel_list import DEFAULT_OUTLIER, DEFAULT_OUTLIER_DETECTION, SubchannelListBalancer

__all__ = ["EndpointLoad", "P2CBalancer", "P2CConfig", "P2CPicker"]


@dataclass(frozen=True, slots=True)
class P2CConfig:
    """Settings of ``p2c``: ``decay`` (time constant of the latency EWMA, seconds),
    ``probe_penalty`` (cost of an endpoint whose first call is still out) and
    ``force_pick_after`` (seconds after which a draw's loser is picked anyway)."""

    decay: float = 10.0
    probe_penalty: float = 1e6
    force_pick_after: float = 3.0

    def __post_init__(self) -> None:
        if self.decay <= 0:
            raise ValueError("decay must be > 0")
        if self.force_pick_after <= 0:
            raise ValueError("force_pick_after must be > 0")


class EndpointLoad:
    """Load of one endpoint: calls in flight and EWMA latency (None before the first sample)."""

    __slots__ = ("ewma", "inflight", "last_pick", "last_sample")

    def __init__(self, now: float) -> None:
        self.inflight = 0
        self.ewma: float | None = None
        self.last_sample = now
        self.last_pick = now

    def cost(self, penalty: float) -> float:
        ewma = self.ewma
        if ewma is None:
            return 0.0 if self.inflight == 0 else penalty
        return ewma * (self.inflight + 1)

    def observe(self, latency: float, now: float, decay: float) -> None:
        ewma = self.ewma
        if ewma is None:
            self.ewma = latency
        else:
            weight = math.exp(-max(now - self.last_sample, 0.0) / decay)
            self.ewma = ewma * weight + latency * (1.0 - weight)
        self.last_sample = now


class _CallDone:
    """One pick's ``on_done``: releases its in-flight slot exactly once."""

    __slots__ = ("config", "load", "now", "report")

    def __init__(
        self,
        load: EndpointLoad,
        report: OnDone | None,
        now: Callable[[], float],
        config: P2CConfig,
    ) -> None:
        self.load: EndpointLoad | None = load
        self.report = report
        self.now = now
        self.config = config

    def __call__(self, latency: float, connection_failure: bool, failure: bool) -> None:
        load = self.load
        if load is None:
            return  # already done
        self.load = None
        load.inflight -= 1
        if latency > 0.0 and not connection_failure:
            load.observe(latency, self.now(), self.config.decay)
        if self.report is not None:
            self.report(latency, connection_failure, failure)


class P2CPicker(Picker):
    """Picks the cheaper of two random READY subchannels (EWMA latency times calls in flight + 1);
    each pick's ``on_done`` updates its endpoint's load."""

    __slots__ = ("_config", "_loads", "_now", "_random", "_reports", "_subchannels")

    def __init__(
        self,
        subchannels: Sequence[SubchannelLike],
        loads: Sequence[EndpointLoad],
        reports: Sequence[OnDone | None],
        *,
        now: Callable[[], float],
        rng: random.Random,
        config: P2CConfig,
    ) -> None:
        self._subchannels = tuple(subchannels)
        self._loads = tuple(loads)
        self._reports = tuple(reports)
        self._now = now
        self._random = rng.random
        self._config = config

    def pick(self, info: PickInfo) -> PickResult | None:
        n = len(self._subchannels)
        now = self._now()
        if n == 1:
            index = 0
        else:
            rand = self._random
            a = int(rand() * n)
            b = int(rand() * (n - 1))
            if b >= a:
                b += 1
            load_a, load_b = self._loads[a], self._loads[b]
            penalty = self._config.probe_penalty
            if load_b.cost(penalty) < load_a.cost(penalty):
                a, b, load_a, load_b = b, a, load_b, load_a
            # a is the cheaper; take b anyway when it has been starved for too long
            index = b if now - load_b.last_pick > self._config.force_pick_after else a
        load = self._loads[index]
        load.inflight += 1
        load.last_pick = now
        done = _CallDone(load, self._reports[index], self._now, self._config)
        return PickResult(self._subchannels[index], done)


class P2CBalancer(SubchannelListBalancer):
    """The ``p2c`` policy: power of two choices over the READY subchannels, with outlier ejection
    and detection (see the module docstring)."""

    def __init__(
        self,
        helper: BalancerHelper,
        *,
        config: P2CConfig | None = None,
        outlier: OutlierConfig | None = DEFAULT_OUTLIER,
        outlier_detection: OutlierDetectionConfig | None = DEFAULT_OUTLIER_DETECTION,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        super().__init__(
            helper, outlier=outlier, outlier_detection=outlier_detection, rng=self._rng
        )
        self.config = config if config is not None else P2CConfig()
        self._loads: dict[Hashable, EndpointLoad] = {}

    def load_of(self, subchannel: SubchannelLike) -> EndpointLoad:
        key = self.endpoint_of(subchannel).key
        load = self._loads.get(key)
        if load is None:
            load = self._loads[key] = EndpointLoad(self.helper.now())
        return load

    def endpoint_removed(self, key: Hashable) -> None:
        self._loads.pop(key, None)

    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        return P2CPicker(
            ready,
            [self.load_of(subchannel) for subchannel in ready],
            [self.on_done_of(subchannel) for subchannel in ready],
            now=self.helper.now,
            rng=self._rng,
            config=self.config,
        )
