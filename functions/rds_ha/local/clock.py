"""A simulated clock: `sleep` advances time instantly, so minutes of AWS work take no wall time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()
        self._watchers: list[Callable[[datetime], None]] = []

    def watch(self, fn: Callable[[datetime], None]) -> Callable[[], None]:
        """Call `fn(now)` after every step of simulated time (a drill's client writes at each one);
        returns the function that stops it."""
        self._watchers.append(fn)
        return lambda: self._watchers.remove(fn)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            now = self._now
        for fn in list(self._watchers):
            fn(now)
