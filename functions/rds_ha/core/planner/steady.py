"""Outside a failover: the writer on the primary, the reader set, replicas.min, Multi-AZ as desired, and
fenced old primaries retired after failover.retain_fenced_hours."""

from __future__ import annotations

from ..actions import (
    ModifyMultiAz,
    Plan,
    Protect,
    Unfence,
)
from ..models import AVAILABLE, Topology
from .dns import dns_actions, reader_verdicts
from .proxy import proxy_move
from .redundancy import no_replicas_of, own_groups, redundancy, stale_groups
from .retire import due_retirements, due_stops


def plan_steady(topo: Topology, suffix: str = "steady") -> Plan:
    """Outside a failover: keep the writer on the primary, the reader over its serving replicas,
    replicas.min (and the cross-region replicas) in place, and Multi-AZ as desired."""
    primary = topo.primary
    if primary is None:
        return Plan("steady", f"primary {topo.state.primary} not found; DNS left as it is")
    if primary.is_replica:
        return Plan("steady", f"primary {primary.id} is a replica; DNS left as it is")
    if primary.fenced or primary.id in topo.state.fenced:  # a workflow that replaced no primary ended without giving it back
        why = f"the primary {primary.id} carries the fence of a workflow that ended without replacing it"
        return Plan("steady", why, (Unfence(reason=why, instance=primary.id),))
    exclude = frozenset(topo.state.fenced)
    actions = dns_actions(topo, primary, exclude, writer=True, why="reader set follows the primary's serving replicas")
    reasons = ["DNS drifted"] if actions else []
    proxy = proxy_move(topo, primary, register=True, why=f"the proxy must target the primary {primary.id} alone")
    if proxy:
        reasons.append("the proxy's target group drifted from the primary")
        actions += proxy
    if primary.status == AVAILABLE:
        if topo.state.primary_since is not None and not primary.deletion_protection:
            reasons.append("the primary lacks deletion protection")
            actions.append(Protect(reason=f"rds-ha made {primary.id} the primary, and it has no deletion protection", instance=primary.id))
        own = own_groups(topo, primary)
        if own:
            reasons.append("replicas without their own parameter group")
            actions += own
        creates = redundancy(topo, primary, None, suffix, "rds-ha reconcile")
        refused = no_replicas_of(primary) if creates else None
        if refused:
            reasons.append(f"replicas missing, but {refused}")
        elif creates:
            reasons.append("replicas missing")
            actions += creates
        else:  # a replica's creation needs the source available: Multi-AZ (which modifies it) comes after
            multi_az = plan_multi_az(topo)
            if multi_az.mutating:
                reasons.append("Multi-AZ differs from the desired state")
                actions += multi_az.mutating
        retire = due_retirements(topo) if topo.state.workflow is None else []
        if retire:
            reasons.append("fenced old primaries past failover.retain_fenced_hours")
            actions += retire
        stops = [s for s in due_stops(topo) if s.instance not in {r.instance for r in retire}]
        if stops:
            reasons.append("a fenced old primary runs again")
            actions += stops
    stale = stale_groups(topo)
    if stale:
        reasons.append("parameter groups of instances that are gone")
        actions += stale
    verdicts = tuple(reader_verdicts(topo, primary, exclude)) if topo.cluster.dns.reader else ()
    return Plan("steady", "; ".join(reasons) or "in sync", tuple(actions), reader=verdicts)


def plan_multi_az(topo: Topology) -> Plan:
    """Bring the primary's Multi-AZ to the desired state (config, or the last alarm/operator choice)."""
    desired, primary = topo.desired_multi_az, topo.primary
    if desired is None:
        return Plan("steady", "Multi-AZ is not managed (no multi_az in the config, no choice made)")
    want = "on" if desired else "off"
    if primary is None or primary.is_replica:
        return Plan("refused", f"primary {topo.state.primary} not found or not standalone")
    if primary.multi_az == desired:
        return Plan("steady", f"Multi-AZ is {want}, as desired")
    if primary.status != AVAILABLE:
        return Plan("waiting", f"Multi-AZ goes {want} once {primary.id} is available (status {primary.status})")
    choice = topo.state.multi_az
    source = f"chosen by {choice.by}" if choice is not None else "the config's multi_az"
    return Plan("start", f"turn Multi-AZ {want}", (ModifyMultiAz(reason=f"desired Multi-AZ is {want} ({source})", instance=primary.id, enabled=desired),))
