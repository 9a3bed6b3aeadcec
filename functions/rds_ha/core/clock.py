"""Time, injectable: the system clock in production, a simulated one in tests and the demo."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, overload


@overload
def utc(at: datetime) -> str: ...
@overload
def utc(at: None) -> None: ...
def utc(at: datetime | None) -> str | None:
    """The one way rds-ha writes a time for people and JSON: UTC, whole seconds, `Z` (2026-12-02T21:54:09Z)."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
