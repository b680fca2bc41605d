"""StateLog: a component's named state, logged once per change (not once per retry) and
counted, so operators see "etcd unreachable" once and "etcd back" once, and metrics can carry
how often each state was entered."""

from __future__ import annotations

import logging
from collections import Counter, deque

__all__ = ["StateLog"]


class StateLog:
    """A component's named state (e.g. etcd reachable or not), logged once per change rather than
    once per retry, with counts of how often each state was entered and a short history."""

    def __init__(self, logger: logging.Logger, initial: str) -> None:
        self._log = logger
        self.state = initial
        #: how many times each state was entered (the initial one not counted)
        self.entered: Counter[str] = Counter()
        #: the last state changes and counted events, oldest first
        self.history: deque[str] = deque(maxlen=64)

    def enter(self, state: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
        """Move to ``state``; log ``message % args`` and count it only when the state
        changes. Returns whether it did."""
        if state == self.state:
            return False
        self.state = state
        self.entered[state] += 1
        self.history.append(state)
        self._log.log(level, message, *args)
        return True

    def count(self, event: str) -> None:
        """Count an event that is not a state (e.g. one failed attempt)."""
        self.entered[event] += 1
        self.history.append(event)
