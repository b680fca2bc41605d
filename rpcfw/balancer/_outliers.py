"""Outlier ejection for the list-based balancers: both mechanisms and their timers.

- :class:`~rpcfw.policy.outlier.OutlierEjector` (consecutive connection failures) reacts at the
  failing call; its ejection ends on a timer at the exact time.
- :class:`~rpcfw.policy.outlier_detection.OutlierDetector` (gRFC A50) counts every call and is
  evaluated on an ``interval`` timer, which stops while the detector is quiet (no calls, nothing
  ejected) and starts again with the next call.

Both timers go through the helper's ``call_later``, so their work is serialized with the
balancer's. An endpoint ejected by either is out; the last READY one is never ejected (the
``ready`` callback names the READY endpoints), and the detector counts the ejector's ejections
toward its ``max_ejection_percent``. Every change calls ``refresh`` (rebuild the picker).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Hashable, Iterable

from ..policy.outlier import OutlierConfig, OutlierEjector
from ..policy.outlier_detection import OutlierDetectionConfig, OutlierDetector
from .base import BalancerHelper, Cancellable

__all__ = ["OutlierTracker"]

log = logging.getLogger("rpcfw.balancer")


class OutlierTracker:
    __slots__ = (
        "_closed",
        "_interval_timer",
        "_name",
        "_ready",
        "_refresh",
        "_refresh_pending",
        "_timer",
        "_timer_at",
        "detector",
        "ejector",
        "helper",
    )

    def __init__(
        self,
        helper: BalancerHelper,
        outlier: OutlierConfig | None,
        detection: OutlierDetectionConfig | None,
        rng: random.Random | None,
        *,
        ready: Callable[[], Iterable[Hashable]],
        name: Callable[[Hashable], object],
        refresh: Callable[[], None],
    ) -> None:
        self.helper = helper
        self.ejector = OutlierEjector(outlier) if outlier is not None else None
        enabled = detection is not None and detection.enabled
        self.detector = OutlierDetector(detection, rng) if detection and enabled else None
        self._ready = ready
        self._name = name  # what to call an endpoint in logs
        self._refresh = refresh
        self._refresh_pending = False
        self._timer: Cancellable | None = None  # the ejector's next un-ejection
        self._timer_at: float | None = None
        self._interval_timer: Cancellable | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.ejector is not None or self.detector is not None

    def set_keys(self, keys: Iterable[Hashable]) -> None:
        keys = list(keys)
        if self.ejector is not None:
            self.ejector.set_keys(keys)
        if self.detector is not None:
            self.detector.set_keys(keys)

    def is_ejected(self, key: Hashable, now: float) -> bool:
        ejector, detector = self.ejector, self.detector
        return (ejector is not None and ejector.is_ejected(key, now)) or (
            detector is not None and detector.is_ejected(key)
        )

    def others_ready(self, key: Hashable, now: float) -> bool:
        """Some READY endpoint other than ``key`` is not ejected (so ``key`` may be)."""
        return any(k != key and not self.is_ejected(k, now) for k in self._ready())

    def record(self, key: Hashable, connection_failure: bool, failure: bool) -> None:
        """One finished call of ``key`` (on the call path)."""
        detector = self.detector
        if detector is not None:
            detector.record(key, failure or connection_failure)
            if self._interval_timer is None:
                self._start_interval()
        ejector = self.ejector
        if ejector is None:
            return
        now = self.helper.now()
        if not connection_failure:
            ejector.record(key, False, now)
            return
        ejected = ejector.record(key, True, now, can_eject=lambda: self.others_ready(key, now))
        if ejected and not self._refresh_pending:
            # on the call path: rebuild in order with the balancer's other work
            self._refresh_pending = True
            self.helper.call_later(0.0, self._pending_refresh)

    def refreshed(self, now: float) -> None:
        """The balancer published for ``now``: (re)arm the ejector's un-ejection timer."""
        self._refresh_pending = False
        if self.ejector is None or self._closed:
            return
        at = self.ejector.next_change(now)
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.helper.call_later(max(0.0, at - now), self._on_timer)

    def close(self) -> None:
        self._closed = True
        for timer in (self._timer, self._interval_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._interval_timer = None

    # -- timers ---------------------------------------------------------------------------
    def _pending_refresh(self) -> None:
        if not self._closed:
            self._refresh()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if not self._closed:
            self._refresh()

    def _start_interval(self) -> None:
        if self._interval_timer is None and self.detector is not None and not self._closed:
            delay = self.detector.config.interval
            self._interval_timer = self.helper.call_later(delay, self._on_interval)

    def _on_interval(self) -> None:
        """A50's timer: evaluate the last interval's calls, eject and un-eject, start again."""
        self._interval_timer = None
        detector = self.detector
        if detector is None or self._closed:
            return
        now = self.helper.now()
        ejector = self.ejector
        events = detector.evaluate(
            now,
            can_eject=lambda key: self.others_ready(key, now),
            ejected_elsewhere=None if ejector is None else lambda key: ejector.is_ejected(key, now),
        )
        if not detector.quiet:
            self._start_interval()  # else the next call starts it again
        for key, ejected, reason in events:
            name = self._name(key)
            if ejected:
                seconds = detector.ejection_time(key)
                log.warning("outlier detection: ejected %s for %.3g s (%s)", name, seconds, reason)
            else:
                log.info("outlier detection: %s back in rotation", name)
        if events:
            self._refresh()
