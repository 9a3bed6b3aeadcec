"""One step per action type: what the executor does for it, and what it records.

Each step takes the executor (a `Runner`: its ports, recorder, clock and versioned `save`), the topology the plan
was made from, the state as the run left it, and the action; it returns the state after it. `STEPS`
maps every action type to its step (a test checks that none is missing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from .. import TAG_CLUSTER, TAG_CREATED_BY, TAG_FENCED, TAG_ROLE
from ..core.actions import (
    AbortWorkflow,
    Action,
    ChangeRecords,
    CompleteWorkflow,
    CreateReplica,
    DeleteInstance,
    DeleteParameterGroup,
    Fence,
    FenceWrites,
    LiftFence,
    ModifyMultiAz,
    MoveProxy,
    Overdue,
    OwnParameterGroup,
    Promote,
    Protect,
    RecordHandled,
    RecordPrimary,
    RetargetAlarms,
    RetireInstance,
    SealWrites,
    StartWorkflow,
    StopInstance,
    UnblockFence,
    Unfence,
    VerifyWriter,
    parameter_group_of,
)
from ..core.clock import Clock
from ..core.config import ClusterConfig
from ..core.errors import AwsError, InstanceAlreadyExistsError, InstanceNotFoundError, InstanceStateError, StepRefusedError
from ..core.models import Blocked, ClusterState, HandledTransition, Instance, Topology, Workflow, WriteFence
from ..core.ports import AlarmPort, DnsPort, FencePort, ProxyPort, RdsPort
from ..observability import logger
from ..probe.model import EngineError
from .hooks import HookCalls
from .recorder import Recorder


class Runner(Protocol):
    """What a step uses of the executor: its ports, recorder, hook calls, clock, and versioned save."""

    rds: RdsPort
    route53: DnsPort
    alarms: AlarmPort
    proxies: ProxyPort
    recorder: Recorder
    hooks: HookCalls
    clock: Clock
    fences: Callable[[ClusterConfig], FencePort | None]

    def save(self, state: ClusterState, **update: Any) -> ClusterState: ...


Step = Callable[[Runner, Topology, ClusterState, Any], ClusterState]


def _region(topo: Topology, action: Action) -> str:
    """The region of the instance the action names (the cluster's if it is not in the topology)."""
    target = topo.instances.get(getattr(action, "instance", ""))
    return target.region if target is not None else topo.cluster.region


def _workflow(state: ClusterState) -> Workflow:
    assert state.workflow is not None, "a workflow step without a workflow"
    return state.workflow


def start_workflow(ex: Runner, topo: Topology, state: ClusterState, action: StartWorkflow) -> ClusterState:
    wf = action.workflow
    assert wf is not None
    # Only an unplanned failover starts the anti-flapping cooldown; a switchover is a human's plan.
    update: dict[str, Any] = {"workflow": wf, "blocked": None}
    if wf.kind == "failover":
        update["last_failover_at"] = ex.clock.now()
        update["workflow"] = wf = wf.model_copy(update={"cooldown_before": state.last_failover_at})
    state = ex.save(state, **update)
    name, ids = topo.cluster.name, {"old_primary": wf.old_primary, "new_primary": wf.new_primary}
    why = action.reason + (f"; overrides: {', '.join(wf.overrides)}" if wf.overrides else "")
    ex.recorder.history(name, f"{wf.kind}_started", f"{wf.kind} started: {wf.old_primary} -> {wf.new_primary} ({why})", workflow=wf.id, **ids)
    ex.recorder.metric(f"{wf.kind.capitalize()}Started", name)
    ex.recorder.notify(topo.cluster, f"{wf.kind}_started", why, unplanned=wf.kind == "failover", **ids, workflow=wf.id)
    return state


def fence(ex: Runner, topo: Topology, state: ClusterState, action: Fence) -> ClusterState:
    inst = topo.instances[action.instance]
    ex.rds.add_tags(inst.region, inst.arn, {TAG_FENCED: ex.clock.now().isoformat(), TAG_ROLE: "fenced"})
    state = ex.save(state, fenced=tuple(dict.fromkeys((*state.fenced, action.instance))))
    ex.recorder.history(topo.cluster.name, "fenced", f"fenced {action.instance}: {action.reason}", instance=action.instance)
    return state


def unfence(ex: Runner, topo: Topology, state: ClusterState, action: Unfence) -> ClusterState:
    """Give an old primary back its role: only the cluster's primary as the state says now (a workflow that ended
    without replacing it), re-read right before the call."""
    if state.primary != action.instance:
        raise StepRefusedError(f"refused to give {action.instance} back its primary role: the cluster's primary is {state.primary}")
    inst = topo.instances.get(action.instance)
    region = inst.region if inst is not None else topo.cluster.region
    current = ex.rds.describe(region, action.instance)
    if current.is_replica:
        raise StepRefusedError(f"refused to give {action.instance} back its primary role: re-read just before the call, it is a read replica")
    if current.fenced:
        ex.rds.remove_tags(region, current.arn, (TAG_FENCED,))
    if current.tags.get(TAG_ROLE) != "primary":
        ex.rds.add_tags(region, current.arn, {TAG_ROLE: "primary"})
    state = ex.save(state, fenced=tuple(i for i in state.fenced if i != action.instance))
    ex.recorder.history(topo.cluster.name, "unfenced", f"{action.describe()}: {action.reason}", instance=action.instance)
    return state


def overdue(ex: Runner, topo: Topology, state: ClusterState, action: Overdue) -> ClusterState:
    wf = _workflow(state)
    state = ex.save(state, workflow=wf.model_copy(update={"overdue_at": ex.clock.now()}))
    ids = {"old_primary": wf.old_primary, "new_primary": wf.new_primary, "workflow": wf.id}
    ex.recorder.history(topo.cluster.name, f"{wf.kind}_overdue", action.reason, **ids)
    ex.recorder.metric("FailoverOverdue", topo.cluster.name)
    ex.recorder.notify(topo.cluster, f"{wf.kind}_overdue", action.reason, unplanned=wf.kind == "failover", **ids)
    return state


def _fence_port(ex: Runner, topo: Topology) -> FencePort:
    port = ex.fences(topo.cluster)
    if port is None:
        raise StepRefusedError(f"{topo.cluster.name} has no switchover.fence configured any more")
    return port


def _shared_group(ex: Runner, topo: Topology, state: ClusterState, action: FenceWrites, region: str) -> ClusterState | None:
    """An unplanned freeze never touches a group another instance of the region uses (the cluster's members were
    checked by the plan; DescribeDBInstances has no filter by group): recorded as never held, not tried again."""
    sharing = sorted(i.id for i in ex.rds.describe_all(region) if i.parameter_group == action.group and i.id != action.instance)
    if not sharing:
        return None
    why = f"not frozen: {action.group} is also {', '.join(sharing)}'s, which a freeze would freeze too"
    ex.recorder.history(topo.cluster.name, "step_failed", f"{action.describe()}: {why}", instance=action.instance)
    now = ex.clock.now()
    skipped = WriteFence(instance=action.instance, group=action.group, parameter=action.parameter, previous="", requested_at=now, lifted_at=now)
    skipped = skipped.model_copy(update={"outcome": why})
    return ex.save(state, workflow=_workflow(state).model_copy(update={"fence": skipped}))


def fence_writes(ex: Runner, topo: Topology, state: ClusterState, action: FenceWrites) -> ClusterState:
    """The fence is recorded, with the value to put back, before the parameter group is changed: a crash
    after the change leaves the record that lifts it. Set again (`again`), the record is kept as it is."""
    inst = topo.instances[action.instance]
    if action.again:
        ex.rds.set_parameter(inst.region, action.group, action.parameter, "1")
        ex.recorder.history(topo.cluster.name, "writes_frozen", f"{action.describe()}: {action.reason}", instance=action.instance)
        return state
    if action.unplanned and (skipped := _shared_group(ex, topo, state, action, inst.region)) is not None:
        return skipped
    previous = ex.rds.parameter(inst.region, action.group, action.parameter)
    fence = WriteFence(instance=action.instance, group=action.group, parameter=action.parameter, previous=previous, requested_at=ex.clock.now())
    update: dict[str, Any] = {"fence": fence} if action.unplanned else {"fence": fence, "step": f"freezing writes on {action.instance}"}
    state = ex.save(state, workflow=_workflow(state).model_copy(update=update))
    try:
        ex.rds.set_parameter(inst.region, action.group, action.parameter, "1")
    except AwsError as exc:
        if exc.transient:
            raise  # the change may have been made: the fence holds, and is sealed or lifted later
        # Refused (no permission on the group, say): nothing changed; the switchover ends at the next look.
        lifted = fence.model_copy(update={"lifted_at": ex.clock.now(), "outcome": f"RDS refused it: {exc}"})
        ex.recorder.history(topo.cluster.name, "step_failed", f"{action.describe()} refused: {exc}", instance=action.instance)
        return ex.save(state, workflow=_workflow(state).model_copy(update={"fence": lifted}))
    ex.recorder.history(topo.cluster.name, "writes_frozen", f"{action.describe()}: {action.reason}", instance=action.instance, previous=previous)
    return state


def seal_writes(ex: Runner, topo: Topology, state: ClusterState, action: SealWrites) -> ClusterState:
    wf = _workflow(state)
    assert wf.fence is not None
    try:
        position = _fence_port(ex, topo).seal(topo.instances[action.instance])
    except EngineError as exc:
        raise AwsError(f"seal writes on {action.instance}: {exc}", transient=True) from exc
    fence = wf.fence.model_copy(update={"position": position, "sealed_at": ex.clock.now()})
    state = ex.save(state, workflow=wf.model_copy(update={"fence": fence, "step": f"waiting for {wf.new_primary} to replay {position:.0f}"}))
    ex.recorder.history(topo.cluster.name, "writes_sealed", f"{action.instance} sealed at write position {position:.0f}: {action.reason}", position=position)
    return state


def unblock_fence(ex: Runner, topo: Topology, state: ClusterState, action: UnblockFence) -> ClusterState:
    try:
        ended = _fence_port(ex, topo).unblock(topo.instances[action.instance])
    except EngineError as exc:
        raise AwsError(f"end the transactions holding the fence back on {action.instance}: {exc}", transient=True) from exc
    if ended:
        ex.recorder.history(topo.cluster.name, "fence_unblocked", f"{action.describe()} ({ended} ended): {action.reason}", instance=action.instance)
    return state


def lift_fence(ex: Runner, topo: Topology, state: ClusterState, action: LiftFence) -> ClusterState:
    wf = _workflow(state)
    fence = wf.fence
    assert fence is not None
    inst = topo.instances.get(action.instance)
    ex.rds.set_parameter(inst.region if inst else topo.cluster.region, fence.group, fence.parameter, fence.previous)
    state = ex.save(state, workflow=wf.model_copy(update={"fence": fence.model_copy(update={"lifted_at": ex.clock.now(), "outcome": action.reason})}))
    ex.recorder.history(topo.cluster.name, "fence_lifted", f"{action.describe()}: {action.reason}", instance=action.instance, value=fence.previous)
    return state


def promote(ex: Runner, topo: Topology, state: ClusterState, action: Promote) -> ClusterState:
    """PromoteReadReplica, recorded before it is sent (an accepted promotion is a future writer, whatever happens
    to this run right after the call), and given back only when RDS refused the first attempt. In a fenced
    switchover the fence is confirmed right before the call, as RDS and SQL show it then."""
    region = _region(topo, action)
    wf = _workflow(state)
    if wf.kind == "switchover" and wf.fence is not None and wf.fence.holding:  # (a failover's freeze never holds it up)
        _confirm_frozen(ex, topo, wf)
    first = wf.promote_issued_at is None
    state = ex.save(state, workflow=wf.model_copy(update={"promote_issued_at": wf.promote_issued_at or ex.clock.now()}))
    try:
        ex.rds.promote(region, action.instance, action.backup_retention)
    except InstanceStateError as exc:
        # A promotion already under way answers InvalidDBInstanceState: that is our promotion.
        current = ex.rds.describe(region, action.instance)
        if current.is_replica and current.status == "available":
            _not_taken(ex, state, first)
            raise
        logger.info(f"promotion of {action.instance} already under way ({exc})")
    except AwsError as exc:
        if not exc.transient:  # an answer that refuses: RDS took nothing
            _not_taken(ex, state, first)
        raise
    state = ex.save(state, workflow=_workflow(state).model_copy(update={"step": f"promotion of {action.instance} in progress"}))
    ex.recorder.history(topo.cluster.name, "promote_issued", f"promotion of {action.instance} issued: {action.reason}", instance=action.instance)
    return state


def _not_taken(ex: Runner, state: ClusterState, first: bool) -> None:
    """RDS refused the promotion's first attempt: the record made before it is given back (nothing may become writable)."""
    if first:
        ex.save(state, workflow=_workflow(state).model_copy(update={"promote_issued_at": None}))


def _confirm_frozen(ex: Runner, topo: Topology, wf: Workflow) -> None:
    """Right before a fenced switchover's promotion: the parameter as RDS holds it, and a new session's read-only
    state where this process reaches the database (a Lambda resuming an issued promotion does not: the parameter
    it set holds, or it is set again first)."""
    fence = wf.fence
    assert fence is not None
    inst = topo.instances.get(fence.instance)
    value = ex.rds.parameter(inst.region if inst is not None else topo.cluster.region, fence.group, fence.parameter)
    refused = f"refused to promote {wf.new_primary}: re-read just before the call, "
    if value != "1":
        raise StepRefusedError(f"{refused}{fence.parameter} is {value} in {fence.group}: the write fence on {fence.instance} does not hold")
    port = ex.fences(topo.cluster)
    if port is None or inst is None:
        return
    try:
        frozen = port.frozen(inst)
    except EngineError as exc:
        if wf.promote_issued_at is None:
            raise StepRefusedError(f"{refused}the write fence on {fence.instance} could not be confirmed over SQL ({exc})") from exc
        return
    if not frozen:
        raise StepRefusedError(f"{refused}a new session on {fence.instance} is not read-only: the write fence does not hold")


def change_records(ex: Runner, topo: Topology, state: ClusterState, action: ChangeRecords) -> ClusterState:
    name = topo.cluster.name
    change_id = ex.route53.change(action.zone_id, action.changes, f"rds-ha {name}: {action.reason}")
    if action.role == "writer" and state.workflow is not None:
        moved = {"writer_moved_at": ex.clock.now(), "writer_change_id": change_id, "step": "restoring redundancy"}
        state = ex.save(state, workflow=state.workflow.model_copy(update=moved))
        ex.recorder.metric("WriterMoved", name)
    ex.recorder.history(name, f"{action.role}_dns", f"{action.describe()} ({action.reason})", change_id=change_id)
    return state


def _proxy_target(state: ClusterState) -> str:
    """The instance the proxy must serve as the state says now: the workflow's new primary, or the primary."""
    return state.workflow.new_primary if state.workflow is not None else state.primary


def move_proxy(ex: Runner, topo: Topology, state: ClusterState, action: MoveProxy) -> ClusterState:
    """Deregister, then register (a target group holds one instance), each checked against the state this
    run holds the lease on: never the instance the proxy must serve deregistered, never another registered;
    the one registered is re-read right before the call (a replica or a fenced instance is refused)."""
    target = _proxy_target(state)
    for old in action.deregister:
        if old == target:
            raise StepRefusedError(f"refused to deregister {old} from proxy {action.proxy}: it is the instance the proxy must serve")
        ex.proxies.deregister(action.region, action.proxy, action.target_group, old)
    if action.instance:
        current = ex.rds.describe(action.region, action.instance)
        why = "it is not the primary the state records" if action.instance != target else None
        why = why or ("it is a read replica" if current.is_replica else "it is fenced" if current.fenced else None)
        if why is not None:
            raise StepRefusedError(f"refused to register {action.instance} with proxy {action.proxy}: re-read just before the call, {why}")
        ex.proxies.register(action.region, action.proxy, action.target_group, action.instance)
    ids = {"proxy": action.proxy, "target_group": action.target_group, "deregistered": list(action.deregister), "registered": action.instance}
    ex.recorder.history(topo.cluster.name, "proxy_moved", f"{action.describe()}: {action.reason}", **ids)
    ex.recorder.metric("ProxyMoved", topo.cluster.name)
    return state


def record_primary(ex: Runner, topo: Topology, state: ClusterState, action: RecordPrimary) -> ClusterState:
    region = _region(topo, action)
    _protect(ex, topo, region, action.instance)
    _retag(ex, topo, region, action.instance)
    update: dict[str, Any] = {"primary": action.instance, "primary_region": None if region == topo.cluster.region else region}
    if state.primary != action.instance:
        update["primary_since"] = ex.clock.now()
    if state.workflow is not None:
        update["workflow"] = state.workflow.model_copy(update={"promoted_at": state.workflow.promoted_at or ex.clock.now()})
    state = ex.save(state, **update)
    ex.recorder.history(topo.cluster.name, "primary_recorded", f"{action.instance} is now the primary: {action.reason}", instance=action.instance)
    return state


def _protect(ex: Runner, topo: Topology, region: str, instance: str) -> None:
    """Deletion protection on a new primary: a stale delete of it (a run that planned while it was
    a replica) then fails at RDS. Best effort: recovery never waits for it."""
    current = topo.instances.get(instance)
    if current is not None and current.deletion_protection:
        return
    try:
        ex.rds.set_deletion_protection(region, instance, True)
    except AwsError as exc:
        ex.recorder.history(topo.cluster.name, "step_failed", f"deletion protection on {instance} failed: {exc}", transient=exc.transient)


def protect(ex: Runner, topo: Topology, state: ClusterState, action: Protect) -> ClusterState:
    """Deletion protection on the state's primary, re-read right before the call (a standalone instance)."""
    region = state.primary_region or topo.cluster.region
    current = ex.rds.describe(region, action.instance)
    if action.instance != state.primary or current.is_replica:
        raise StepRefusedError(f"refused to {action.describe()}: re-read just before the call, it is not the standalone primary the state records")
    if not current.deletion_protection:
        ex.rds.set_deletion_protection(region, action.instance, True)
        ex.recorder.history(topo.cluster.name, "deletion_protection", f"{action.describe()}: {action.reason}", instance=action.instance)
    return state


def _retag(ex: Runner, topo: Topology, region: str, instance: str) -> None:
    """A promoted replica is tagged rds-ha:role=primary (it was born `replica`). Best effort, as `_protect`."""
    current = topo.instances.get(instance)
    if current is None or current.tags.get(TAG_ROLE) == "primary" or not current.arn:
        return
    try:
        ex.rds.add_tags(region, current.arn, {TAG_ROLE: "primary"})
    except AwsError as exc:
        ex.recorder.history(topo.cluster.name, "step_failed", f"tagging {instance} {TAG_ROLE}=primary failed: {exc}", transient=exc.transient)


def _scaling_step(ex: Runner, state: ClusterState, field: str, now: datetime, call: Callable[[], None]) -> ClusterState:
    """A scaling call with its cooldown recorded first (a crash after the call must not let a
    redelivery scale twice) and given back if AWS refuses the call (nothing changed)."""
    before = getattr(state, field)
    state = ex.save(state, **{field: now})
    try:
        call()
    except AwsError:
        ex.save(state, **{field: before})
        raise
    return state


def create_replica(ex: Runner, topo: Topology, state: ClusterState, action: CreateReplica) -> ClusterState:
    region = action.region or _region(topo, action)
    if action.parameter_group_from:  # recorded before the copy: a crash after it leaves nothing unknown behind
        state = _own_group(ex, state, parameter_group_of(action.instance), region)

    def create() -> None:
        a = action
        if a.parameter_group_from:  # its own copy, ready for when it is available (OwnParameterGroup associates it)
            _copy_group(ex, topo, region, a.parameter_group_from, a.instance)
        try:
            ex.rds.create_replica(
                region, a.instance, a.source, a.az, a.instance_class, a.tags, a.source_region, a.kms_key_id, a.subnet_group, a.security_group_ids
            )
        except InstanceAlreadyExistsError:
            logger.info(f"replica {a.instance} exists already: created by an earlier run")

    if action.scaling is not None:  # the cooldown starts before the call: a crash must not double it
        state = _scaling_step(ex, state, "last_scale_out_at", ex.clock.now(), create)
    else:
        create()
    ex.recorder.history(topo.cluster.name, "replica_created", f"{action.describe()}: {action.reason}", instance=action.instance, region=region)
    ex.recorder.metric("ReplicaCreated", topo.cluster.name)
    return state


def _own_group(ex: Runner, state: ClusterState, group: str, region: str) -> ClusterState:
    """Record a parameter group rds-ha makes (or finds made) for an instance: deleted once the instance is gone."""
    if state.own_groups.get(group) == region:
        return state
    return ex.save(state, own_groups={**state.own_groups, group: region})


def _own_group_of(ex: Runner, topo: Topology, state: ClusterState, instance: str) -> ClusterState:
    """Before an instance is deleted: its own parameter group (one rds-ha made, for an instance rds-ha created) recorded,
    to delete after. A group the operator made stays theirs."""
    inst = topo.instances.get(instance)
    if inst is None or inst.parameter_group != parameter_group_of(instance) or TAG_CREATED_BY not in inst.tags:
        return state
    return _own_group(ex, state, inst.parameter_group, inst.region)


def delete_parameter_group(ex: Runner, topo: Topology, state: ClusterState, action: DeleteParameterGroup) -> ClusterState:
    """Delete a parameter group rds-ha made, once its instance is gone: re-read right before the call (the instance
    found after all keeps it, and the group is no longer rds-ha's to clean). RDS refuses a group in use."""
    name, what = topo.cluster.name, action.describe()
    try:
        ex.rds.describe(action.region, action.instance)
        outcome = f"kept parameter group {action.group}: re-read just before the call, {action.instance} exists"
    except InstanceNotFoundError:
        outcome = {
            "deleted": f"{what}: {action.reason}",
            "gone": f"parameter group {action.group} was deleted already",
            "in use": f"kept parameter group {action.group}: RDS says it is in use (InvalidDBParameterGroupState)",
        }[ex.rds.delete_parameter_group(action.region, action.group)]
    state = ex.save(state, own_groups={g: r for g, r in state.own_groups.items() if g != action.group})
    ex.recorder.history(name, "parameter_group_deleted" if outcome.startswith("delete") else "parameter_group_kept", outcome, group=action.group)
    return state


def _copy_group(ex: Runner, topo: Topology, region: str, source: str, instance: str) -> str:
    group = parameter_group_of(instance)
    ex.rds.copy_parameter_group(region, source, group, f"rds-ha: {instance}'s own copy of {source}", {TAG_CLUSTER: topo.cluster.name})
    return group


def own_parameter_group(ex: Runner, topo: Topology, state: ClusterState, action: OwnParameterGroup) -> ClusterState:
    """Associate a replica's own parameter group (its copy made first, if an earlier run did not), or reboot it to
    apply the group: re-read right before the call, only a read replica that is not the state's primary."""
    inst = topo.instances.get(action.instance)
    region = inst.region if inst is not None else topo.cluster.region
    current = ex.rds.describe(region, action.instance)
    why = _refusal(action.instance, state, current)
    if why is not None and why != "it has deletion protection":
        raise StepRefusedError(f"refused to {action.describe()}: re-read just before the call, {why}")
    if action.source_group:
        state = _own_group(ex, state, action.group, region)
        _copy_group(ex, topo, region, action.source_group, action.instance)
        ex.rds.set_parameter_group(region, action.instance, action.group)
        kind = "parameter_group_associated"
    else:
        ex.rds.reboot(region, action.instance)
        kind = "replica_rebooted"
    ex.recorder.history(topo.cluster.name, kind, f"{action.describe()}: {action.reason}", instance=action.instance, group=action.group)
    return state


def _refusal(instance: str, state: ClusterState, current: Instance) -> str | None:
    """Why a replica must not be deleted after all, re-read right before the call."""
    wf = state.workflow
    if instance == state.primary or (wf is not None and instance == wf.new_primary):
        return "it is the cluster's primary"
    if not current.is_replica:
        return "it is no longer a read replica"
    if current.deletion_protection:
        return "it has deletion protection"
    return None


def delete_instance(ex: Runner, topo: Topology, state: ClusterState, action: DeleteInstance) -> ClusterState:
    """Delete a replica, re-read right before the call: a plan made a while ago may name an instance
    that a promotion (or an operator) has since made standalone, or that the state now calls primary."""
    region, instance = _region(topo, action), action.instance
    state = _own_group_of(ex, topo, state, instance)

    def delete() -> None:
        try:
            why = _refusal(instance, state, ex.rds.describe(region, instance))
            if why is not None:
                raise StepRefusedError(f"refused to delete {instance}: re-read just before the call, {why}")
            ex.rds.delete_replica(region, instance)
        except InstanceNotFoundError:
            logger.info(f"{instance} is gone already")

    if action.scaling is not None:
        state = _scaling_step(ex, state, "last_scale_in_at", ex.clock.now(), delete)
    else:
        delete()
    kind = "replica_removed" if action.scaling else "orphan_deleted"
    ex.recorder.history(topo.cluster.name, kind, f"{action.describe()}: {action.reason}", instance=instance)
    ex.recorder.metric("ReplicaRemoved", topo.cluster.name)
    return state


def retire_instance(ex: Runner, topo: Topology, state: ClusterState, action: RetireInstance) -> ClusterState:
    """Delete a fenced old primary after its final snapshot, re-read right before each call: a plan made a
    while ago must not delete an instance that has since become something else."""
    region, instance = _region(topo, action), action.instance
    try:
        current = ex.rds.describe(region, instance)
    except InstanceNotFoundError:
        logger.info(f"{instance} is gone already")
        return ex.save(state, fenced=tuple(i for i in state.fenced if i != instance))
    wf = state.workflow
    if instance == state.primary or (wf is not None and instance in (wf.new_primary, wf.old_primary)) or current.is_replica or not current.fenced:
        raise StepRefusedError(f"refused to retire {instance}: re-read just before the call, it is no longer a fenced old primary")
    if current.replicas:
        raise StepRefusedError(f"refused to retire {instance}: re-read just before the call, {', '.join(i for _, i in current.replicas)} replicate from it")
    state = _own_group_of(ex, topo, state, instance)
    if current.deletion_protection:  # rds-ha protected it while it was the primary
        ex.rds.set_deletion_protection(region, instance, False)
        ex.recorder.history(topo.cluster.name, "protection_lifted", f"deletion protection of {instance} lifted to retire it", instance=instance)
    ex.rds.delete_standalone(region, instance, action.snapshot)
    state = ex.save(state, fenced=tuple(i for i in state.fenced if i != instance))
    ex.recorder.history(topo.cluster.name, "retired", f"{action.describe()}: {action.reason}", instance=instance, snapshot=action.snapshot)
    return state


def modify_multi_az(ex: Runner, topo: Topology, state: ClusterState, action: ModifyMultiAz) -> ClusterState:
    ex.rds.modify_multi_az(_region(topo, action), action.instance, action.enabled)
    note = "AWS builds the standby from a snapshot meanwhile; writes may slow until it is in sync"
    ids = {"instance": action.instance, "enabled": action.enabled}
    ex.recorder.history(topo.cluster.name, "multi_az", f"{action.describe()}: {action.reason}. {note}", **ids)
    ex.recorder.notify(topo.cluster, "multi_az_changed", action.describe(), **ids, reason=action.reason)
    return state


def record_handled(ex: Runner, topo: Topology, state: ClusterState, action: RecordHandled) -> ClusterState:
    """The one writer of handled alarm transitions, for every alarm role."""
    assert action.at is not None
    return ex.save(state, handled_alarms={**state.handled_alarms, action.alarm: HandledTransition(at=action.at, outcome=action.outcome)})


def retarget_alarms(ex: Runner, topo: Topology, state: ClusterState, action: RetargetAlarms) -> ClusterState:
    """Each failover alarm that watches the old primary now watches the new one. Done once per workflow:
    a failure is recorded and notified (a human must point that alarm), never retried forever."""
    name, cfg = topo.cluster.name, topo.cluster
    new = topo.instances.get(action.new)
    region = new.region if new is not None else cfg.region
    if region != cfg.region:
        why = f"the failover alarms live in {cfg.region}, and {action.new} is in {region}: deploy alarms there (rds-ha alarms render)"
        ex.recorder.history(name, "alarms_not_moved", why)
        ex.recorder.notify(cfg, "alarms_not_moved", why, new_primary=action.new)
    else:
        moved = []
        for alarm in action.alarms:
            try:
                if ex.alarms.retarget_alarm(cfg.region, alarm, action.old, action.new):
                    moved.append(alarm)
            except AwsError as exc:
                ex.recorder.history(name, "step_failed", f"pointing alarm {alarm} at {action.new} failed: {exc}", transient=exc.transient)
                ex.recorder.notify(cfg, "alarm_not_moved", f"alarm {alarm} still watches {action.old}: {exc}", code=exc.code)
        if moved:
            ex.recorder.history(name, "alarms_moved", f"{', '.join(moved)} now watch {action.new} (were {action.old}): {action.reason}", alarms=moved)
    return ex.save(state, workflow=_workflow(state).model_copy(update={"alarms_moved_at": ex.clock.now()}))


def stop_instance(ex: Runner, topo: Topology, state: ClusterState, action: StopInstance) -> ClusterState:
    """Stop a fenced old primary, its deletion protection lifted first: RDS cannot modify a stopped instance, so
    retire could never lift it afterwards (the fence tag, not the protection, is what keeps it out of use)."""
    region, current = _region(topo, action), topo.instances.get(action.instance)
    if current is not None and current.deletion_protection:
        ex.rds.set_deletion_protection(region, action.instance, False)
        why = f"deletion protection of {action.instance} lifted before it is stopped"
        ex.recorder.history(topo.cluster.name, "protection_lifted", why, instance=action.instance)
    ex.rds.stop(region, action.instance)
    ex.recorder.history(topo.cluster.name, "old_primary_stopped", f"{action.describe()}: {action.reason}", instance=action.instance)
    return state


def verify_writer(ex: Runner, topo: Topology, state: ClusterState, action: VerifyWriter) -> ClusterState:
    state = ex.save(state, workflow=_workflow(state).model_copy(update={"verified_at": ex.clock.now(), "step": "verified; restoring redundancy"}))
    ex.recorder.history(topo.cluster.name, "writer_verified", f"{action.describe()}: {action.reason}", instance=action.instance)
    ex.recorder.metric("WriterVerified", topo.cluster.name)
    return state


def complete_workflow(ex: Runner, topo: Topology, state: ClusterState, action: CompleteWorkflow) -> ClusterState:
    wf, name, now = _workflow(state), topo.cluster.name, ex.clock.now()
    took = (now - wf.started_at).total_seconds()
    state = ex.save(state, workflow=None, last_failover_completed_at=now)
    message = f"{wf.kind} complete: {wf.new_primary} is the primary ({took:.0f}s after it started)"
    ex.recorder.history(name, f"{wf.kind}_completed", message, workflow=wf.id, seconds=round(took, 1))
    ex.recorder.metric(f"{wf.kind.capitalize()}Completed", name)
    ex.recorder.metric(f"{wf.kind.capitalize()}Seconds", name, took, unit=MetricUnit.Seconds)
    ids = {"old_primary": wf.old_primary, "new_primary": wf.new_primary, "workflow": wf.id}
    ex.recorder.notify(
        topo.cluster, f"{wf.kind}_completed", message, unplanned=wf.kind == "failover", **ids, started_at=wf.started_at.isoformat(), seconds=round(took, 1)
    )
    ex.hooks.ended(topo, wf, "completed", message)
    return state


def abort_workflow(ex: Runner, topo: Topology, state: ClusterState, action: AbortWorkflow) -> ClusterState:
    """The workflow ends blocked. One that replaced no primary gives back the cooldown its failover started."""
    wf, name = _workflow(state), topo.cluster.name
    update: dict[str, Any] = {"workflow": None, "blocked": Blocked(at=ex.clock.now(), reason=action.reason, trigger=wf.trigger)}
    if wf.kind == "failover" and state.primary == wf.old_primary and state.last_failover_at is not None and state.last_failover_at >= wf.started_at:
        update["last_failover_at"] = wf.cooldown_before
    state = ex.save(state, **update)
    ex.recorder.history(name, f"{wf.kind}_aborted", f"{wf.kind} aborted: {action.reason}", workflow=wf.id)
    ex.recorder.metric("FailoverBlocked", name)
    ids = {"old_primary": wf.old_primary, "new_primary": wf.new_primary}
    ex.recorder.notify(topo.cluster, f"{wf.kind}_aborted", action.reason, **ids, unplanned=wf.kind == "failover")
    ex.hooks.ended(topo, wf, "aborted", action.reason)
    return state


STEPS: dict[type[Action], Step] = {
    StartWorkflow: start_workflow,
    FenceWrites: fence_writes,
    SealWrites: seal_writes,
    UnblockFence: unblock_fence,
    LiftFence: lift_fence,
    Fence: fence,
    Unfence: unfence,
    OwnParameterGroup: own_parameter_group,
    DeleteParameterGroup: delete_parameter_group,
    Protect: protect,
    Overdue: overdue,
    Promote: promote,
    ChangeRecords: change_records,
    MoveProxy: move_proxy,
    RecordPrimary: record_primary,
    CreateReplica: create_replica,
    DeleteInstance: delete_instance,
    RetireInstance: retire_instance,
    ModifyMultiAz: modify_multi_az,
    RecordHandled: record_handled,
    RetargetAlarms: retarget_alarms,
    StopInstance: stop_instance,
    VerifyWriter: verify_writer,
    CompleteWorkflow: complete_workflow,
    AbortWorkflow: abort_workflow,
}
