"""Alarm transitions, for every role (failover, scale_out, scale_in, multi_az_on, multi_az_off): which
cluster an alarm belongs to, and which of the alarms in ALARM now still wait for a decision.

One record serves every role: `ClusterState.handled_alarms` keeps the last transition of each alarm a
decision was taken on, and what it was (written only by the executor's RecordHandled step), so a second
delivery or a late one never acts on the same transition twice. A failover alarm still in ALARM is another
matter: it stands until answered (`standing_failover`), and reconcile decides it again every minute.
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


def standing_failover(state: ClusterState, seen: list[Firing]) -> Firing | None:
    """A failover alarm in ALARM since after the last failover: a standing request, decided again on every
    reconcile until a failover answers it or the alarm clears (level-triggered). Its handled record, when
    there is one, dedups deliveries and notifications, never the decision: a refusal is judged again as soon as
    its reason ends (an ack, the cooldown's end, a replica with data, a resume).

    EventBridge, SNS and Lambda deliver at least once but not always: an exhausted retry or a throttled
    function must not leave a dead primary alone either. A transition older than the last failover was
    answered by that failover; one older than the current primary's term (a switchover's too: the alarm then
    watches the new primary but keeps its state until CloudWatch evaluates it again) was about another primary."""
    answered = max((t for t in (state.last_failover_at, state.primary_since) if t is not None), default=None)
    for f in seen:
        if f.role != "failover":
            continue
        if answered is not None and f.at <= answered:
            continue
        return f
    return None
