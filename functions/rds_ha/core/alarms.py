"""Alarm transitions, for every role (failover, scale_out, scale_in, multi_az_on, multi_az_off): which
cluster an alarm belongs to, and which of the alarms in ALARM now still wait for a decision.

One record serves every role: `ClusterState.handled_alarms` keeps the last transition of each alarm a
decision was taken on (written only by the executor's RecordHandled step), so a second delivery, a
late one, or reconcile finding the alarm still in ALARM never acts on the same transition twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from .config import AlarmRole, ClusterConfig
from .models import AlarmStatus, ClusterState


def route(configs: Iterable[ClusterConfig], alarm: str) -> tuple[ClusterConfig, AlarmRole] | None:
    """The cluster and role of an alarm (an alarm belongs to one cluster, in one role)."""
    for cfg in configs:
        role = cfg.alarms.role_of(alarm)
        if role is not None:
            return cfg, role
    return None


@dataclass(frozen=True)
class Firing:
    """A mapped alarm in ALARM now: since when, and whether a decision was taken on this transition."""

    alarm: str
    role: AlarmRole
    at: datetime
    handled: bool


def firing(cfg: ClusterConfig, state: ClusterState, alarms: Mapping[str, AlarmStatus]) -> list[Firing]:
    """The cluster's mapped alarms among `alarms` (those in ALARM), failover alarms first."""
    out = []
    for name, role in cfg.alarms.roles():
        status = alarms.get(name)
        if status is not None and status.updated_at is not None:
            out.append(Firing(name, role, status.updated_at, state.handled(name, status.updated_at) is not None))
    return out


def missed_failover(state: ClusterState, seen: list[Firing]) -> Firing | None:
    """A failover alarm in ALARM whose transition no decision has handled: its delivery was lost or late.

    EventBridge, SNS and Lambda deliver at least once but not always: an exhausted retry or a throttled
    function must not leave a dead primary alone. A transition older than the last failover was
    answered by that failover."""
    for f in seen:
        if f.role != "failover" or f.handled:
            continue
        if state.last_failover_at is not None and f.at <= state.last_failover_at:
            continue
        return f
    return None
