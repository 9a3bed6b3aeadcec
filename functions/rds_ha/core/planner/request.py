"""What asks for a failover or a switchover, and the alarm transition it is about."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from ..models import AlarmStatus, same_instant


@dataclass(frozen=True)
class FailoverRequest:
    """What asked for a failover: an alarm transition or an operator."""

    trigger: str  # human description, e.g. "alarm orders-primary-down (eventbridge)"
    failure_time: datetime
    workflow_id: str
    automatic: bool = True
    alarm_name: str | None = None
    # The DBInstanceIdentifier the alarm watches, when its metric has that dimension.
    alarm_instance: str | None = None
    target: str | None = None
    # An operator's overrides, each lifting one guard and each named in history (`overrides`):
    ignore_cooldown: bool = False  # --ignore-cooldown: past the anti-flapping cooldown
    max_lag_seconds: float | None = None  # --max-lag: this limit instead of failover.max_lag_seconds (inf: any lag, unknown too)
    allow_healthy_primary: bool = False  # --allow-healthy-primary: the primary answers, and is failed over anyway
    # A switchover: lag is the latest reading, not a window before a failure.
    planned: bool = False
    # A game day (`rds-ha drill`): fail over a healthy primary on purpose; the lag guard still holds.
    drill: bool = False
    # Reconcile deciding again on a failover alarm still in ALARM (core.alarms.standing_failover): its handled
    # record dedups the record and the notification of the same answer, never the decision itself.
    standing: bool = False
    # A switchover's: the primary when it was asked. Another one since (a failover ran) ends it.
    expected_primary: str | None = None
    # The alarm is in ALARM for want of datapoints (AlarmStatus.missing_data), and the SQL probe's newest word on
    # the primary since shortly before (when, healthy), None: it said nothing. Read only for such an alarm of a
    # probed cluster (guards.uncorroborated).
    metric_absence: bool = False
    probe_health: tuple[datetime, bool] | None = None

    @property
    def lag_unchecked(self) -> bool:
        """--max-lag any: a replica's lag is not judged at all (unknown, or replication not active)."""
        return self.max_lag_seconds is not None and math.isinf(self.max_lag_seconds)

    @property
    def overrides(self) -> tuple[str, ...]:
        """The guards an operator lifted, as the flags that lifted them (history and the workflow say them)."""
        lag = None if self.max_lag_seconds is None else "any" if self.lag_unchecked else f"{self.max_lag_seconds:g}"
        named = (
            ("--ignore-cooldown", self.ignore_cooldown),
            (f"--max-lag {lag}", lag is not None),
            ("--allow-healthy-primary", self.allow_healthy_primary),
        )
        return tuple(flag for flag, on in named if on)


def current_transition(request: FailoverRequest, alarms: Mapping[str, AlarmStatus]) -> FailoverRequest:
    """The request about the alarm's current transition into ALARM, as DescribeAlarms shows it.

    A delivery names an alarm, but the time it carries is the sender's word: asynchronous retries
    arrive up to 6 h late, a failure-queue redrive replays old events, and anyone who may publish to
    the alarm's topic picks the time. The lag window and the handled-transition record are about the
    failure the alarm reports now."""
    alarm = alarms.get(request.alarm_name) if request.alarm_name is not None else None
    if alarm is None or alarm.state != "ALARM" or alarm.updated_at is None:
        return request
    if same_instant(alarm.updated_at, request.failure_time):
        return request
    said, at = request.failure_time.isoformat(timespec="milliseconds"), alarm.updated_at.isoformat(timespec="milliseconds")
    return replace(request, failure_time=alarm.updated_at, trigger=f"{request.trigger}: its current transition, at {at} (the event said {said})")
