"""`rds-ha retire`: delete a fenced old primary once the operator has decided its writes are safe in a
final snapshot. On RDS a standalone instance cannot become a replica again (Patroni rejoins an old primary
with pg_rewind; RDS offers nothing like it), so an old primary is kept, billed, until someone retires it.

Only a fenced old primary of this cluster is retired: never the primary, a replica, an instance
something still replicates from, or one another cluster owns.
"""

from __future__ import annotations

from datetime import datetime

from ... import TAG_CLUSTER, TAG_FENCED
from ..actions import Plan, RetireInstance, StopInstance
from ..models import AVAILABLE, Instance, Topology
from . import guards

# DeleteDBInstance: "When a DB instance is in a failure state and has a status of failed, incompatible-restore,
# or incompatible-network, RDS can delete the instance only if you enable [SkipFinalSnapshot]."
NO_FINAL_SNAPSHOT = frozenset({"failed", "incompatible-restore", "incompatible-network"})
RETIRABLE = frozenset({"available", "stopped", "storage-full", "incompatible-parameters"}) | NO_FINAL_SNAPSHOT


def snapshot_name(inst: Instance, now: datetime) -> str:
    """The final snapshot's identifier (letters, digits, hyphens; RDS allows 255), named by the fence's time:
    the name a dry run or a confirmation shows is the one the run uses, and one fence gets one snapshot."""
    return f"{inst.id}-retired-{inst.fenced_at or now:%Y%m%d%H%M%S}"


def retire_limitation(topo: Topology, instance: str, final_snapshot: bool) -> str | None:
    """Why `instance` must not be retired now (or None)."""
    state, inst = topo.state, topo.instances.get(instance)
    busy = guards.in_progress(state)
    if busy is not None:
        return f"{busy}; retire old primaries once it completes"
    if instance == state.primary:
        return f"{instance} is the cluster's primary: rds-ha retires only fenced old primaries"
    if inst is None:
        return f"{instance} not found in {', '.join(topo.cluster.regions)}"
    if inst.cluster_tag != topo.cluster.name:
        return f"{instance} is not tagged {TAG_CLUSTER}={topo.cluster.name}: not this cluster's to retire"
    if inst.is_replica:
        return f"{instance} is a read replica of {inst.source}: remove it with rds-ha replicas {topo.cluster.name} remove {instance}"
    if not inst.fenced:  # the fence tag is the durable mark (the fence step tags before it records)
        return f"{instance} is not a fenced old primary of {topo.cluster.name} (no {TAG_FENCED} tag)"
    if inst.replicas:
        return f"{instance} still has replicas ({', '.join(i for _, i in inst.replicas)}): delete them first"
    if inst.status == "deleting":
        return f"{instance} is being deleted already"
    if inst.status not in RETIRABLE:
        return f"{instance} is {inst.status}: retire it once it is available or stopped"
    if inst.status == "stopped" and inst.deletion_protection:  # "You can't modify a stopped DB instance" (User Guide)
        return (
            f"{instance} is stopped with deletion protection, which RDS cannot lift while it is stopped: start it "
            f"(aws rds start-db-instance --db-instance-identifier {instance}), then retire it"
        )
    if inst.status in NO_FINAL_SNAPSHOT and final_snapshot:
        return (
            f"{instance} is {inst.status}: RDS deletes an instance in that state only without a final snapshot "
            "(pass --no-final-snapshot; its automated backups are kept either way)"
        )
    return None


def due_retirements(topo: Topology) -> list[RetireInstance]:
    """The fenced old primaries past failover.retain_fenced_hours, each retired with a final snapshot (one
    RDS would refuse a snapshot of, a failed one, is left to the operator: status shows it)."""
    hours = topo.cluster.failover.retain_fenced_hours
    if hours is None:
        return []
    due = []
    for inst in sorted(topo.instances.values(), key=lambda i: i.id):
        at = inst.fenced_at
        if at is None or (topo.now - at).total_seconds() < hours * 3600 or retire_limitation(topo, inst.id, True) is not None:
            continue
        age = (topo.now - at).total_seconds() / 3600
        why = f"fenced {age:.0f}h ago, past failover.retain_fenced_hours {hours:g}"
        due.append(RetireInstance(reason=why, instance=inst.id, snapshot=snapshot_name(inst, topo.now)))
    return due


def due_stops(topo: Topology) -> list[StopInstance]:
    """With failover.stop_old_primary, a fenced old primary found running is stopped again once nothing replicates from
    it: RDS starts a stopped instance after seven days (API reference, StopDBInstance: "The instance restarts
    automatically after 7 days"), and the old primary must not run (and take writes from whoever reaches it)."""
    if not topo.cluster.failover.stop_old_primary or topo.state.workflow is not None:
        return []
    out = []
    for iid in topo.state.fenced:
        inst = topo.instances.get(iid)
        if inst is None or iid == topo.state.primary or inst.is_replica or not inst.fenced or inst.status != AVAILABLE:
            continue
        if any(r.status != "deleting" for r in topo.replicas_of(iid)):
            continue
        why = f"failover.stop_old_primary is set and {iid} runs again (RDS starts a stopped instance after seven days)"
        out.append(StopInstance(reason=why, instance=iid))
    return out


def plan_retire(topo: Topology, instance: str, by: str, final_snapshot: bool = True) -> Plan:
    refusal = retire_limitation(topo, instance, final_snapshot)
    if refusal is not None:
        return Plan("ignored" if refusal.endswith("being deleted already") else "refused", refusal)
    snapshot = snapshot_name(topo.instances[instance], topo.now) if final_snapshot else None
    action = RetireInstance(reason=f"retired by {by}", instance=instance, snapshot=snapshot)
    return Plan("start", action.describe(), (action,))
