"""Replica scaling and an operator's replica changes, within replicas.min/max and the cooldowns."""

from __future__ import annotations

import math
from dataclasses import replace

from ... import TAG_CLUSTER, TAG_CREATED_BY, TAG_ROLE
from ..actions import (
    Action,
    ChangeRecords,
    DeleteInstance,
    Plan,
    Scaling,
)
from ..models import AVAILABLE, Instance, Topology
from . import guards
from .candidates import fmt, judged_now, ranked
from .dns import dns_actions
from .redundancy import live_replicas, no_replicas_of, redundancy, remote_replica, replica_name
from .request import FailoverRequest


def _failover_candidate_now(topo: Topology) -> str | None:
    """The replica a failover would promote now (latest lag): scale-in never removes it."""
    _, eligible = ranked(judged_now(topo), FailoverRequest(trigger="scale-in", failure_time=topo.now, workflow_id="", automatic=True))
    return eligible[0].instance if eligible else None


def plan_scale(topo: Topology, direction: Scaling, suffix: str, trigger: str, force: bool = False, az: str | None = None) -> Plan:
    """One replica more or less, within replicas.min/max and the direction's cooldown (`force`
    skips the cooldown: an operator's explicit request)."""
    cfg, state, now = topo.cluster, topo.state, topo.now
    busy = guards.in_progress(state)
    if busy is not None:
        return Plan("refused", f"{busy}; scaling waits")
    primary = topo.primary
    if primary is None or primary.is_replica or primary.status != AVAILABLE:
        return Plan("refused", f"primary {state.primary} is {primary.status if primary else 'not found'}; replicas are changed only under an available primary")
    last = state.last_scale_out_at if direction == "scale_out" else state.last_scale_in_at
    cooldown = cfg.replicas.scale_out_cooldown_seconds if direction == "scale_out" else cfg.replicas.scale_in_cooldown_seconds
    if not force and last is not None and (now - last).total_seconds() < cooldown:
        return Plan("refused", f"{direction.replace('_', '-')} cooldown: last one {int((now - last).total_seconds())}s ago, cooldown {cooldown}s")
    live = live_replicas(topo, primary)
    if direction == "scale_out":
        if len(live) >= cfg.replicas.max:
            return Plan("refused", f"{len(live)} replica(s), at replicas.max {cfg.replicas.max}")
        refused = no_replicas_of(primary)
        if refused:
            return Plan("refused", refused)
        create = redundancy(topo, primary, None, suffix, trigger, want=len(live) + 1, remote=False)[0]
        action = replace(create, reason=f"{trigger}: {len(live)} -> {len(live) + 1} replicas (max {cfg.replicas.max})", scaling="scale_out", az=az or create.az)
        return Plan("start", f"add replica {action.instance}" + (f" in {action.az}" if action.az else "") + f": {action.reason}", (action,))
    if len(live) <= cfg.replicas.min:
        return Plan("refused", f"{len(live)} replica(s), at replicas.min {cfg.replicas.min}")
    keep = _failover_candidate_now(topo)
    lag = topo.recent_lag or {}

    def most_lagging_newest(r: Instance) -> tuple[float, float, str]:
        reading = lag.get(r.id)
        seconds = math.inf if reading is None or reading.seconds < 0 else reading.seconds
        return (-seconds, -(r.created.timestamp() if r.created else 0), r.id)

    # Only available replicas: one being created or modified is busy (RDS refuses to delete most of those);
    # only the cluster's tagged ones (IAM refuses the others).
    victims = sorted((r for r in live if r.id != keep and r.status == AVAILABLE and r.cluster_tag == cfg.name), key=most_lagging_newest)
    if not victims:
        return Plan("refused", f"no replica can be removed: {keep} is the best failover candidate and the others are busy")
    victim = victims[0]
    reading = lag.get(victim.id)
    why = "not available" if victim.status != AVAILABLE else f"lag {fmt(reading.seconds)}" if reading and reading.seconds >= 0 else "lag unknown"
    kept = f"{keep} kept as the failover candidate" if keep else "no replica qualifies as failover candidate"
    reason = f"{trigger}: {len(live)} -> {len(live) - 1} replicas (min {cfg.replicas.min}); {victim.id} chosen ({why}; most lagging, then newest; {kept})"
    return plan_remove(topo, victim, reason, "scale_in")


def plan_add_replica(topo: Topology, suffix: str, by: str, region: str | None = None, az: str | None = None) -> Plan:
    """An operator's `replicas add`: in the primary's region within replicas.max (no cooldown), or one
    more replica in another region (its KMS key and class from replicas.cross_region when listed)."""
    primary = topo.primary
    if primary is None or primary.is_replica or primary.status != AVAILABLE:
        return Plan("refused", f"primary {topo.state.primary} is {primary.status if primary else 'not found'}; replicas are added only to an available primary")
    if az is not None and not az.startswith(region or primary.region):
        return Plan("refused", f"AZ {az} is not in {region or primary.region}")
    refused = no_replicas_of(primary)
    if refused:
        return Plan("refused", refused)
    if region is None or region == primary.region:
        return plan_scale(topo, "scale_out", suffix, f"added by {by}", force=True, az=az)
    other = next((c for c in topo.cluster.replicas.cross_region if c.region == region), None)
    if primary.subnet_group and not (other and other.subnet_group):
        return Plan(
            "refused",
            f"{primary.id} is in a VPC (subnet group {primary.subnet_group}): a replica in {region} needs a DB subnet group there "
            f"(replicas.cross_region: region {region}, subnet_group); without one RDS would put it in no VPC",
        )
    cfg = topo.cluster
    tags = {TAG_CLUSTER: cfg.name, TAG_ROLE: "replica", TAG_CREATED_BY: f"added by {by}"}
    action = remote_replica(topo, primary, region, other, replica_name(topo, suffix, set(topo.instances)), f"added by {by}", tags, az=az)
    note = "" if other else f" ({region} is not in replicas.cross_region: encrypted sources need a kms_key_id there)"
    return Plan("start", f"add replica {action.instance} in {region}{note}", (action,))


def plan_remove(topo: Topology, victim: Instance, reason: str, scaling: Scaling | None = None) -> Plan:
    """Take a replica out of the reader set, then delete it: DNS never names a deleted instance."""
    primary = topo.primary
    actions: list[Action] = []
    if primary is not None:
        dns = dns_actions(topo, primary, frozenset({victim.id, *topo.state.fenced}), writer=False, why=f"{victim.id} is being removed")
        actions += [replace(a, blocking=True) if isinstance(a, ChangeRecords) else a for a in dns]
    actions.append(DeleteInstance(reason=reason, instance=victim.id, what="replica", scaling=scaling))
    return Plan("start", f"remove replica {victim.id}: {reason}", tuple(actions))


def plan_remove_replica(topo: Topology, instance: str, by: str, force: bool = False) -> Plan:
    """An operator's `replicas remove`: refused below replicas.min, or for the best failover candidate unless forced."""
    primary = topo.primary
    victim = topo.instances.get(instance)
    busy = guards.in_progress(topo.state)
    if busy is not None:
        return Plan("refused", f"{busy}; remove replicas once it completes")
    if primary is None or victim is None or victim.source != primary.id:
        return Plan("refused", f"{instance} is not a replica of the primary {topo.state.primary}")
    if victim.region == primary.region:
        live = live_replicas(topo, primary)
        if len(live) <= topo.cluster.replicas.min and victim in live:
            return Plan("refused", f"{len(live)} replica(s) in {primary.region}, at replicas.min {topo.cluster.replicas.min}; lower it first")
        if not force and _failover_candidate_now(topo) == instance:
            return Plan("refused", f"{instance} is the best failover candidate now; use --force to remove it anyway")
    return plan_remove(topo, victim, f"removed by {by}")
