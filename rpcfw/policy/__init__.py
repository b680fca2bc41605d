"""Call and connection policies: backoff, outlier ejection and detection. Pure logic, no IO."""

from __future__ import annotations

from .backoff import Backoff, BackoffConfig
from .outlier import OutlierConfig, OutlierEjector
from .outlier_detection import (
    FailurePercentageEjection,
    OutlierDetectionConfig,
    OutlierDetector,
    SuccessRateEjection,
)

__all__ = [
    "Backoff",
    "BackoffConfig",
    "FailurePercentageEjection",
    "OutlierConfig",
    "OutlierDetectionConfig",
    "OutlierDetector",
    "OutlierEjector",
    "SuccessRateEjection",
]
