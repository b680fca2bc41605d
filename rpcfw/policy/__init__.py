"""Call and connection policies: backoff, outlier ejection and detection, service config
(retries, hedging, timeouts). Pure logic, no IO."""

from __future__ import annotations

from .backoff import Backoff, BackoffConfig
from .outlier import OutlierConfig, OutlierEjector
from .outlier_detection import (
    FailurePercentageEjection,
    OutlierDetectionConfig,
    OutlierDetector,
    SuccessRateEjection,
)
from .service_config import (
    HedgingPolicy,
    MethodConfig,
    RetryPolicy,
    RetryThrottling,
    ServiceConfig,
)

__all__ = [
    "Backoff",
    "BackoffConfig",
    "FailurePercentageEjection",
    "HedgingPolicy",
    "MethodConfig",
    "OutlierConfig",
    "OutlierDetectionConfig",
    "OutlierDetector",
    "OutlierEjector",
    "RetryPolicy",
    "RetryThrottling",
    "ServiceConfig",
    "SuccessRateEjection",
]
