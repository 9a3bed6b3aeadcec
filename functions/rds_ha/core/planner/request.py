"""What asks for a failover or a switchover, and the alarm transition it is about."""

from __future__ import annotations

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
    force: bool = False
    # A switchover: lag is the latest reading, not a window before a failure.
    planned: bool = False
    # A game day (`rds-ha drill`): fail over a healthy primary on purpose; the lag guard still holds.
    drill: bool = False


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
