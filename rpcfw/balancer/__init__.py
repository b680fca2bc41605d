"""Client-side load balancing: contracts (:mod:`.base`), policies and their registry.

Pure logic, no IO: the channel supplies subchannels, a clock and timers through a
:class:`BalancerHelper`.
"""

from __future__ import annotations

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import (
    FailurePercentageEjection,
    OutlierDetectionConfig,
    SuccessRateEjection,
)
from .base import (
    Balancer,
    BalancerHelper,
    Cancellable,
    ConnectivityState,
    Endpoint,
    OnDone,
    Picker,
    PickInfo,
    PickResult,
    SubchannelLike,
    waits_for_call,
)
from .p2c import P2CBalancer, P2CConfig
from .pick_first import PickFirstBalancer
from .policies import BalancerFactory, balancer_factory, balancer_names, register_balancer
from .ring_hash import RingHashBalancer, RingHashConfig
from .round_robin import RoundRobinBalancer
from .subchannel_list import NoReadyPicker, SubchannelListBalancer
from .weighted_round_robin import WeightedRoundRobinBalancer, WeightedRoundRobinConfig

__all__ = [
    "Balancer",
    "BalancerFactory",
    "BalancerHelper",
    "Cancellable",
    "ConnectivityState",
    "Endpoint",
    "FailurePercentageEjection",
    "NoReadyPicker",
    "OnDone",
    "OutlierConfig",
    "OutlierDetectionConfig",
    "P2CBalancer",
    "P2CConfig",
    "PickFirstBalancer",
    "PickInfo",
    "PickResult",
    "Picker",
    "RingHashBalancer",
    "RingHashConfig",
    "RoundRobinBalancer",
    "SubchannelLike",
    "SubchannelListBalancer",
    "SuccessRateEjection",
    "WeightedRoundRobinBalancer",
    "WeightedRoundRobinConfig",
    "balancer_factory",
    "balancer_names",
    "register_balancer",
    "waits_for_call",
]
