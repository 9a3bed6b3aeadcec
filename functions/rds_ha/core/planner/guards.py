"""The refusals of a failover or a switchover, each a guard that returns its sentence or None (Patroni's
`failover_limitation()` style). The decision, the dry run, `status` and `check` all say these words.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import ClusterConfig
from ..models import AVAILABLE, ClusterState, Topology
from .request import FailoverRequest


def in_progress(state: ClusterState) -> str | None:
    """A workflow is under way: nothing else starts until it ends."""
    wf = state.workflow
    return None if wf is None else f"{wf.kind} {wf.old_primary} -> {wf.new_primary} already in progress (step: {wf.step})"


def pause_limitation(state: ClusterState, automatic: bool) -> str | None:
    """Why automation may not change the cluster now: an operator paused it (who, and why). An
    operator's own command is its own authority (None)."""
    paused = state.paused
    if paused is None or not automatic:
        return None
    return f"paused by {paused.by}" + (f": {paused.reason}" if paused.reason else "")


def cooldown_seconds_left(topo: Topology) -> float | None:
    """Seconds the anti-flapping cooldown still holds an automatic failover back (None: it does not),
    unless a human acknowledged the last failover."""
    return cooldown_left(topo.cluster, topo.state, topo.now)


def cooldown_left(cfg: ClusterConfig, state: ClusterState, now: datetime) -> float | None:
    last = state.last_failover_at
    if last is None or (state.acknowledged is not None and state.acknowledged.at >= last):
        return None
    left = (last + timedelta(seconds=cfg.failover.cooldown_seconds) - now).total_seconds()
    return left if left > 0 else None


def cooldown_limitation(topo: Topology, request: FailoverRequest) -> str | None:
    if request.ignore_cooldown or cooldown_seconds_left(topo) is None:
        return None
    assert topo.state.last_failover_at is not None
    elapsed = (topo.now - topo.state.last_failover_at).total_seconds()
    return (
        f"cooldown: last failover {int(elapsed)}s ago, within cooldown_seconds {topo.cluster.failover.cooldown_seconds}; "
        "a human must look (rds-ha ack lifts it; rds-ha failover --ignore-cooldown overrides it once)"
    )


def alarm_cleared(topo: Topology, request: FailoverRequest) -> str | None:
    """The alarm the request names is not in ALARM any more (as DescribeAlarms shows it now)."""
    if request.alarm_name is None:
        return None
    alarm = topo.alarms.get(request.alarm_name)
    if alarm is not None and alarm.state == "ALARM":
        return None
    now_is = "no longer exists" if alarm is None else f"is {alarm.state} now"
    return f"alarm {request.alarm_name} {now_is}; nothing to do"


def not_the_primary(topo: Topology, request: FailoverRequest) -> str | None:
    """The alarm watches an instance that is not the primary (any more)."""
    primary = topo.state.primary
    if request.alarm_instance is None or request.alarm_instance == primary:
        return None
    return f"alarm {request.alarm_name} watches {request.alarm_instance}, which is not the primary ({primary})"


def primary_is_replica(topo: Topology) -> str | None:
    primary = topo.primary
    if primary is None or not primary.is_replica:
        return None
    return f"{primary.id} is itself a replica of {primary.source}; the config's primary is wrong"


def multi_az_grace(topo: Topology, request: FailoverRequest) -> str | None:
    """A Multi-AZ primary fails over to its standby by itself: no replica is promoted during the grace."""
    primary, grace = topo.primary, topo.cluster.failover.multi_az_grace_seconds
    if not request.automatic or primary is None or not primary.multi_az or not grace:
        return None
    until = request.failure_time + timedelta(seconds=grace)
    if topo.now >= until:
        return None
    return (
        f"{primary.id} is Multi-AZ: RDS fails over to its standby by itself; no replica is promoted before "
        f"{until.isoformat(timespec='seconds')} (multi_az_grace_seconds {grace}), and reconcile decides again then"
    )


def uncorroborated(topo: Topology, request: FailoverRequest) -> str | None:
    """An alarm in ALARM only for want of datapoints (a metric delivery gap looks the same on a healthy primary),
    on a cluster whose SQL probe is deployed: an automatic failover waits for the probe to find the primary
    unhealthy too (or RDS to show it down). Decided again at every reconcile while the alarm stays in ALARM."""
    primary = topo.primary
    if not request.automatic or not request.metric_absence or topo.cluster.probe is None or primary is None or primary.status != AVAILABLE:
        return None
    seen = request.probe_health
    if seen is not None and not seen[1]:
        return None
    word = "has no recent sample of it" if seen is None else f"found it healthy at {seen[0].isoformat(timespec='seconds')}"
    return (
        f"alarm {request.alarm_name} is in ALARM for want of datapoints only, and the SQL probe {word}: a metric gap is not "
        f"a failure; {primary.id} is failed over once the probe finds it unhealthy too (or RDS shows it down)"
    )


def healthy_primary(topo: Topology, request: FailoverRequest) -> str | None:
    """An operator's failover of a primary that answers (a drill does it on purpose)."""
    primary = topo.primary
    if request.automatic or request.allow_healthy_primary or request.drill or primary is None or primary.status != AVAILABLE:
        return None
    return (
        f"primary {primary.id} is available: failing over a healthy primary risks two writers; "
        "rds-ha switchover changes a healthy primary safely, --allow-healthy-primary if it is really down"
    )


def not_a_replica(topo: Topology, target: str | None) -> str | None:
    """The requested target is not a replica of the primary."""
    primary = topo.state.primary
    found = topo.instances.get(target) if target else None
    if target and (found is None or found.source != primary):
        return f"{target} is not a replica of the primary {primary}"
    return None
