"""Call and connection policies: backoff, outlier ejection. Pure logic, no IO."""

from __future__ import annotations

from .backoff import Backoff, BackoffConfig
from .outlier import OutlierConfig, OutlierEjector

__all__ = ["Backoff", "BackoffConfig", "OutlierConfig", "OutlierEjector"]
