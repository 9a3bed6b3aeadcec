"""Replicas to create (replicas.min, spread over AZs; replicas.cross_region), and why RDS would refuse any."""

from __future__ import annotations

from ... import TAG_CLUSTER, TAG_CREATED_BY, TAG_ROLE
from ..actions import (
    OWN_GROUP_SUFFIX,
    CreateReplica,
    DeleteParameterGroup,
    OwnParameterGroup,
    parameter_group_of,
)
from ..config import CrossRegionReplicas
from ..models import AVAILABLE, TERMINAL_STATUSES, Instance, Topology


def replica_name(topo: Topology, suffix: str, taken: set[str]) -> str:
    n = 1
    while (name := f"{topo.cluster.name}-{suffix[:6]}-{n}") in taken:
        n += 1
    return name


def live_replicas(topo: Topology, primary: Instance, region: str | None = None) -> list[Instance]:
    """Replicas of `primary` in `region` (default: its own) that exist or are being created."""
    where = region or primary.region
    return [r for r in topo.replicas_of(primary.id) if r.region == where and r.status not in TERMINAL_STATUSES and not r.fenced]


def no_replicas_of(primary: Instance) -> str | None:
    """Why RDS would refuse to create any read replica of `primary`, or None."""
    if primary.managed_password:
        # RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager", Limitations.
        return (
            f"{primary.id}'s master password is managed by Secrets Manager (ManageMasterUserPassword): RDS creates no read replica of it "
            "(turn it off: modify-db-instance --no-manage-master-user-password --master-user-password ...)"
        )
    if primary.backup_retention <= 0:
        return f"{primary.id} has automated backups off (BackupRetentionPeriod 0): RDS creates no read replica of it"
    return None


def redundancy(
    topo: Topology, primary: Instance, old: Instance | None, suffix: str, created_by: str, want: int | None = None, remote: bool = True
) -> list[CreateReplica]:
    """Replicas to create: up to `want` (default replicas.min) in the primary's region, spread over AZs
    away from `old`, and (if `remote`) the configured count in each other region."""
    cfg = topo.cluster
    actions: list[CreateReplica] = []
    taken = set(topo.instances)
    tags = {TAG_CLUSTER: cfg.name, TAG_ROLE: "replica", TAG_CREATED_BY: created_by}
    live = live_replicas(topo, primary)
    want = cfg.replicas.min if want is None else want
    missing = want - len(live)
    for az in _spread_azs(topo, primary, old, live, max(0, missing)):
        name = replica_name(topo, suffix, taken)
        taken.add(name)
        actions.append(
            CreateReplica(
                reason=f"{primary.id} has {len(live)} replica(s) in {primary.region}, replicas.min is {cfg.replicas.min}",
                instance=name,
                source=primary.id,
                az=az,
                instance_class=cfg.replicas.instance_class or primary.instance_class,
                tags=tags,
                region=primary.region,
                source_region=primary.region,
                parameter_group_from=own_group_from(topo, primary),
            )
        )
    for other in cfg.replicas.cross_region if remote else ():
        if other.region == primary.region or other.region in topo.unreadable:
            continue  # (a region that could not be read may hold its replicas: none is created blind)
        have = live_replicas(topo, primary, other.region)
        for _ in range(other.count - len(have)):
            name = replica_name(topo, suffix, taken)
            taken.add(name)
            why = f"{primary.id} has {len(have)} replica(s) in {other.region}, replicas.cross_region asks for {other.count}"
            actions.append(remote_replica(topo, primary, other.region, other, name, why, tags))
    return actions


def own_groups(topo: Topology, primary: Instance) -> list[OwnParameterGroup]:
    """With a write fence configured, each replica rds-ha created in the primary's region gets its own copy of the
    parameter group it inherited: associated once it is available, then applied by a reboot (RDS applies a newly
    associated group only after the instance reboots: User Guide, "Associating a DB parameter group with a DB
    instance"). Until then it does not serve reads (dns.reader_verdicts)."""
    if topo.cluster.switchover.fence is None:
        return []
    out = []
    for replica in topo.replicas_of(primary.id):
        if not _created_by_us(topo, replica) or replica.region != primary.region or replica.status != AVAILABLE:
            continue
        group, own = replica.parameter_group, parameter_group_of(replica.id)
        if group != own and group and not group.startswith("default."):
            why = f"a write fence on {primary.id} must never reach {replica.id}: {group} is {primary.id}'s group"
            out.append(OwnParameterGroup(reason=why, instance=replica.id, group=own, source_group=group))
        elif group == own and replica.parameter_apply_status == "pending-reboot":
            why = f"RDS applies {own} to {replica.id} at its next reboot (ParameterApplyStatus pending-reboot)"
            out.append(OwnParameterGroup(reason=why, instance=replica.id, group=own))
    return out


def stale_groups(topo: Topology) -> list[DeleteParameterGroup]:
    """The parameter groups rds-ha made whose instance is gone (not among the cluster's members, in a region that
    was read): each deleted. An instance still there that the look missed keeps its group: RDS refuses to delete
    a group in use."""
    out = []
    for group, region in sorted(topo.state.own_groups.items()):
        instance = group.removesuffix(OWN_GROUP_SUFFIX)
        if region in topo.unreadable or instance in topo.instances:
            continue
        why = f"rds-ha made {group} for {instance}, which no longer exists"
        out.append(DeleteParameterGroup(reason=why, group=group, instance=instance, region=region))
    return out


def own_group_pending(topo: Topology, replica: Instance) -> str | None:
    """Why a replica rds-ha created under a write fence does not serve yet: its own group is not applied (or None)."""
    if topo.cluster.switchover.fence is None or not _created_by_us(topo, replica):
        return None
    group, own = replica.parameter_group, parameter_group_of(replica.id)
    if not group or group.startswith("default."):
        return None
    if group != own:
        return f"its own parameter group {own} is not associated yet"
    if replica.parameter_apply_status not in (None, "in-sync"):
        return f"its own parameter group is {replica.parameter_apply_status}"
    return None


def _created_by_us(topo: Topology, replica: Instance) -> bool:
    return replica.cluster_tag == topo.cluster.name and TAG_CREATED_BY in replica.tags


def own_group_from(topo: Topology, source: Instance) -> str | None:
    """With a write fence configured, a replica gets its own copy of its source's parameter group: fencing the
    primary then never freezes the replica that will replace it. (A default group is not copied: a fence
    cannot use it anyway.)"""
    group = source.parameter_group
    if topo.cluster.switchover.fence is None or not group or group.startswith("default."):
        return None
    return group


def remote_replica(
    topo: Topology, primary: Instance, region: str, other: CrossRegionReplicas | None, name: str, reason: str, tags: dict[str, str], az: str | None = None
) -> CreateReplica:
    """A replica of `primary` in another region: made there from the source's ARN, with that region's KMS
    key, subnet group and security groups from replicas.cross_region (when it lists the region)."""
    cfg = topo.cluster
    return CreateReplica(
        reason=reason,
        instance=name,
        source=primary.arn or primary.id,
        az=az,
        instance_class=(other.instance_class if other else None) or cfg.replicas.instance_class or primary.instance_class,
        tags=tags,
        region=region,
        source_region=primary.region,
        kms_key_id=other.kms_key_id if other else None,
        subnet_group=other.subnet_group if other else None,
        security_group_ids=other.security_group_ids if other else (),
    )


def _spread_azs(topo: Topology, new: Instance, old: Instance | None, live: list[Instance], count: int) -> list[str | None]:
    """AZs for new replicas: the least used first, avoiding the failed primary's AZ."""
    configured = [az for az in topo.cluster.replicas.availability_zones if az.startswith(new.region)]
    pool = configured or sorted({i.az for i in topo.instances.values() if i.az and i.region == new.region})
    bad = {old.az} if old is not None and old.az else set()
    replica_azs = [r.az for r in live]
    out: list[str | None] = []
    for _ in range(count):
        if not pool:
            out.append(None)  # let RDS choose
            continue
        used = [new.az, *replica_azs]
        az = min(pool, key=lambda a: (a in bad, used.count(a), replica_azs.count(a), a))
        replica_azs.append(az)
        out.append(az)
    return out
