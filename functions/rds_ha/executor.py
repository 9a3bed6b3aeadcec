"""The executor: performs a plan's actions idempotently and records every step.

Each action is safe to repeat: the planner re-derives what is left from AWS after any crash, and
AWS's own answers for "already done" (an existing replica name, an instance already gone, a
promotion already under way) count as done here. Progress and history go to the state table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from . import TAG_FENCED
from .adapters.cloudwatch import CloudWatchAdapter
from .adapters.hooks import Hooks
from .adapters.notify import Notifier
from .adapters.rds import RdsAdapter
from .adapters.route53 import Route53Adapter
from .adapters.state import StateTable
from .core.actions import (
    AbortWorkflow,
    Action,
    ChangeRecords,
    CompleteWorkflow,
    CreateReplica,
    DeleteInstance,
    Fence,
    ModifyMultiAz,
    Plan,
    Promote,
    RecordHandled,
    RecordPrimary,
    RetargetAlarms,
    StartWorkflow,
    StopInstance,
    VerifyWriter,
    Wait,
)
from .core.clock import Clock
from .core.errors import AwsError, HookError, InstanceAlreadyExistsError, InstanceNotFoundError, InstanceStateError, StateConflictError, StepRefusedError
from .core.models import Blocked, ClusterState, HandledTrigger, Topology
from .observability import emit, logger

if TYPE_CHECKING:
    from .lease import Leases

# A state write that lost its version race is redone on the fresh item this many times.
SAVE_ATTEMPTS = 5


class CrashPoint(Exception):  # noqa: N818 - a test hook, not an error users see
    """Raised by a test hook between two steps to simulate the process dying there."""


@dataclass
class Outcome:
    state: ClusterState
    done: list[str] = field(default_factory=list)
    error: str | None = None


class Executor:
    def __init__(
        self,
        rds: RdsAdapter,
        route53: Route53Adapter,
        table: StateTable,
        notifier: Notifier | None,
        clock: Clock,
        topic_arn: str | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.rds, self.route53, self.table, self.notifier, self.clock, self.hooks = rds, route53, table, notifier, clock, hooks
        self.topic_arn = topic_arn
        # Tests set this to raise CrashPoint after the Nth AWS mutation (crash-at-every-step proofs).
        self.after_step: Any = None
        # The run's leases (set by the service): every step is taken under a held, renewed lease.
        self.leases: Leases | None = None
        # The failover alarms follow the new primary (set by the service).
        self.cloudwatch: CloudWatchAdapter | None = None

    # -- recording ----------------------------------------------------------------------------
    def history(self, cluster: str, kind: str, message: str, **details: Any) -> None:
        logger.info(message, extra={"cluster": cluster, "kind": kind, **{k: str(v) for k, v in details.items()}})
        self.table.add_history(cluster, self.clock.now(), kind, message, details)

    def notify(self, topo: Topology, kind: str, message: str, **details: Any) -> None:
        topic = topo.cluster.notifications.sns_topic_arn or self.topic_arn
        if not topic or self.notifier is None:
            return
        body = {"type": kind, "cluster": topo.cluster.name, "message": message, "at": self.clock.now().isoformat(), **details}
        try:
            self.notifier.publish(topic, f"rds-ha {topo.cluster.name}: {kind}", body)
        except AwsError as exc:  # a notification must never stop a failover
            logger.warning(f"notification failed: {exc}", extra={"cluster": topo.cluster.name})

    def _save(self, state: ClusterState, **update: Any) -> ClusterState:
        """Write this run's `update` of the state. If the item changed since it was read, the writer
        was one that holds no lease (an operator's pause or ack, an apply, an OK alarm clearing
        `blocked`) and touches only its own fields: while this run still holds the lease, nothing
        it owns (workflow, primary, fencing) changed, so the update is redone on the fresh item."""
        for _ in range(SAVE_ATTEMPTS):
            try:
                return self.table.put_state(state.model_copy(update=update))
            except StateConflictError:
                if self.leases is not None:
                    self.leases.ensure(state.cluster)
                fresh = self.table.get_state(state.cluster)
                if fresh is None:
                    raise
                state = fresh
        raise StateConflictError(f"state of {state.cluster} kept changing during {', '.join(update)}; the next run goes on")

    def _step(self, name: str) -> None:
        if self.after_step is not None:
            self.after_step(name)

    # -- decisions that are not workflow steps --------------------------------------------------
    def record_decision(self, topo: Topology, plan: Plan, trigger: str) -> ClusterState:
        """Blocked, refused and ignored decisions: recorded and (but for ignored) notified."""
        cluster, state = topo.cluster.name, topo.state
        details: dict[str, Any] = {"trigger": trigger}
        if plan.candidates:
            details["candidates"] = {v.instance: v.reason for v in plan.candidates}
        self.history(cluster, f"failover_{plan.outcome}", plan.reason, **details)
        if plan.outcome in ("blocked", "vetoed"):
            state = self._save(state, blocked=Blocked(at=self.clock.now(), reason=plan.reason, trigger=trigger))
            emit("FailoverBlocked", cluster)
            self.notify(topo, f"failover_{plan.outcome}", plan.reason, trigger=trigger, primary=state.primary, would_promote=plan.chosen)
        elif plan.outcome == "paused":
            emit("FailoverPaused", cluster)
            self.notify(topo, "failover_paused", plan.reason, trigger=trigger, primary=state.primary, would_promote=plan.chosen)
        elif plan.outcome == "deferred":
            self.notify(topo, "failover_deferred", plan.reason, trigger=trigger, primary=state.primary)
        elif plan.outcome == "refused":
            emit("FailoverRefused", cluster)
            self.notify(topo, "failover_refused", plan.reason, trigger=trigger, primary=state.primary)
        return state

    def post_hook(self, topo: Topology, wf: Any, outcome: str, message: str) -> None:
        """Tell the cluster's post_failover hook how it ended (asynchronous; a failure is recorded, never raised)."""
        arn = topo.cluster.hooks.post_failover
        if arn is None or self.hooks is None:
            return
        payload = {"type": f"post_{wf.kind}", "outcome": outcome, "planned": wf.kind != "failover", "cluster": topo.cluster.name}
        payload |= {"old_primary": wf.old_primary, "new_primary": wf.new_primary, "message": message, "started_at": wf.started_at.isoformat()}
        try:
            self.hooks.tell(arn, payload)
        except HookError as exc:
            self.history(topo.cluster.name, "hook_failed", str(exc), hook=arn)

    def mark_handled(self, state: ClusterState, alarm: str, at: datetime, outcome: str) -> ClusterState:
        return self._save(state, last_trigger=HandledTrigger(alarm=alarm, at=at, outcome=outcome))

    # -- actions ------------------------------------------------------------------------------
    def execute(self, topo: Topology, plan: Plan) -> Outcome:
        out = Outcome(state=topo.state)
        for action in plan.actions:
            if isinstance(action, Wait):
                if out.state.workflow is not None and out.state.workflow.step != action.reason:
                    out.state = self._save(out.state, workflow=out.state.workflow.model_copy(update={"step": action.reason}))
                continue
            try:
                if self.leases is not None:
                    self.leases.ensure(topo.cluster.name)  # LeaseLostError: this run stalled; it stops here
                out.state = self._apply(topo, out.state, action)
                out.done.append(action.describe())
            except AwsError as exc:
                # Retries (adaptive mode) are exhausted or the state forbids it now: record it and
                # leave it to the next run, which re-plans from what AWS shows. A failed marker or
                # clean-up step must not hold up the promotion and the writer behind it.
                # The step may have recorded (and given back) state before AWS refused it: continue from the stored one.
                out.state = self.table.get_state(topo.cluster.name) or out.state
                self.history(topo.cluster.name, "step_failed", f"{action.describe()} failed: {exc}", transient=exc.transient)
                emit("StepFailed", topo.cluster.name)
                if not exc.transient:  # retrying will not cure it: a human must look
                    self.notify(topo, "failover_step_failed", f"{action.describe()} failed: {exc}", code=exc.code)
                if action.critical:
                    out.error = str(exc)
                    break
                continue
            self._step(action.describe())
        return out

    def _create(self, region: str, action: CreateReplica) -> None:
        try:
            self.rds.create_replica(
                action.region or region,
                action.instance,
                action.source,
                action.az,
                action.instance_class,
                action.tags,
                action.source_region,
                action.kms_key_id,
                action.subnet_group,
                action.security_group_ids,
            )
        except InstanceAlreadyExistsError:
            logger.info(f"replica {action.instance} exists already: created by an earlier run")

    def _delete(self, region: str, instance: str, state: ClusterState) -> None:
        """Delete a replica, re-read right before the call: a plan made a while ago may name an instance
        that a promotion (or an operator) has since made standalone, or that the state now calls primary."""
        try:
            current = self.rds.describe(region, instance)
        except InstanceNotFoundError:
            logger.info(f"{instance} is gone already")
            return
        wf = state.workflow
        why = (
            "it is the cluster's primary"
            if instance == state.primary or (wf is not None and instance == wf.new_primary)
            else "it is no longer a read replica"
            if not current.is_replica
            else "it has deletion protection"
            if current.deletion_protection
            else None
        )
        if why is not None:
            raise StepRefusedError(f"refused to delete {instance}: re-read just before the call, {why}")
        try:
            self.rds.delete_replica(region, instance)
        except InstanceNotFoundError:
            logger.info(f"{instance} is gone already")

    def _protect(self, topo: Topology, region: str, instance: str) -> None:
        """Deletion protection on a new primary: a stale delete of it (a run that planned while it was
        a replica) then fails at RDS. Best effort: recovery never waits for it."""
        current = topo.instances.get(instance)
        if current is not None and current.deletion_protection:
            return
        try:
            self.rds.set_deletion_protection(region, instance, True)
        except AwsError as exc:
            self.history(topo.cluster.name, "step_failed", f"deletion protection on {instance} failed: {exc}", transient=exc.transient)

    def _retarget(self, topo: Topology, state: ClusterState, action: RetargetAlarms) -> ClusterState:
        """Each failover alarm that watches the old primary now watches the new one. Done once per workflow:
        a failure is recorded and notified (a human must point that alarm), never retried forever."""
        name, wf = topo.cluster.name, state.workflow
        assert wf is not None
        alarm_region = topo.cluster.region
        new = topo.instances.get(action.new)
        region = new.region if new is not None else alarm_region
        if region != alarm_region:
            why = f"the failover alarms live in {alarm_region}, and {action.new} is in {region}: deploy alarms there (rds-ha alarms render)"
            self.history(name, "alarms_not_moved", why)
            self.notify(topo, "alarms_not_moved", why, new_primary=action.new)
        elif self.cloudwatch is not None:
            moved = []
            for alarm in action.alarms:
                try:
                    if self.cloudwatch.retarget_alarm(alarm_region, alarm, action.old, action.new):
                        moved.append(alarm)
                except AwsError as exc:
                    self.history(name, "step_failed", f"pointing alarm {alarm} at {action.new} failed: {exc}", transient=exc.transient)
                    self.notify(topo, "alarm_not_moved", f"alarm {alarm} still watches {action.old}: {exc}", code=exc.code)
            if moved:
                self.history(name, "alarms_moved", f"{', '.join(moved)} now watch {action.new} (were {action.old}): {action.reason}", alarms=moved)
        return self._save(state, workflow=wf.model_copy(update={"alarms_moved_at": self.clock.now()}))

    def _scaling_step(self, state: ClusterState, field: str, now: datetime, call: Any) -> ClusterState:
        """A scaling call with its cooldown recorded first (a crash after the call must not let a
        redelivery scale twice) and given back if AWS refuses the call (nothing changed)."""
        before = getattr(state, field)
        state = self._save(state, **{field: now})
        try:
            call()
        except AwsError:
            self._save(state, **{field: before})
            raise
        return state

    def _apply(self, topo: Topology, state: ClusterState, action: Action) -> ClusterState:
        cfg, name = topo.cluster, topo.cluster.name
        now = self.clock.now()
        wf = state.workflow
        target = topo.instances.get(getattr(action, "instance", ""))
        region = target.region if target is not None else cfg.region
        if isinstance(action, StartWorkflow):
            new_wf = action.workflow
            assert new_wf is not None
            # Only an unplanned failover starts the anti-flapping cooldown; a switchover is a human's plan.
            update: dict[str, Any] = {"workflow": new_wf, "blocked": None}
            if new_wf.kind == "failover":
                update["last_failover_at"] = now
            state = self._save(state, **update)
            self.history(
                name,
                f"{new_wf.kind}_started",
                f"{new_wf.kind} started: {new_wf.old_primary} -> {new_wf.new_primary} ({action.reason})",
                workflow=new_wf.id,
                old_primary=new_wf.old_primary,
                new_primary=new_wf.new_primary,
            )
            emit(f"{new_wf.kind.capitalize()}Started", name)
            self.notify(
                topo,
                f"{new_wf.kind}_started",
                action.reason,
                unplanned=new_wf.kind == "failover",
                old_primary=new_wf.old_primary,
                new_primary=new_wf.new_primary,
                workflow=new_wf.id,
            )
            return state
        if isinstance(action, Fence):
            inst = topo.instances[action.instance]
            self.rds.add_tags(inst.region, inst.arn, {TAG_FENCED: now.isoformat()})
            fenced = tuple(dict.fromkeys((*state.fenced, action.instance)))
            state = self._save(state, fenced=fenced)
            self.history(name, "fenced", f"fenced {action.instance}: {action.reason}", instance=action.instance)
            return state
        if isinstance(action, Promote):
            try:
                self.rds.promote(region, action.instance, action.backup_retention)
            except InstanceStateError as exc:
                # A promotion already under way answers InvalidDBInstanceState: that is our promotion.
                current = self.rds.describe(region, action.instance)
                if current.is_replica and current.status == "available":
                    raise
                logger.info(f"promotion of {action.instance} already under way ({exc})")
            assert wf is not None
            state = self._save(state, workflow=wf.model_copy(update={"promote_issued_at": now, "step": f"promotion of {action.instance} in progress"}))
            self.history(name, "promote_issued", f"promotion of {action.instance} issued: {action.reason}", instance=action.instance)
            return state
        if isinstance(action, ChangeRecords):
            change_id = self.route53.change(action.zone_id, action.changes, f"rds-ha {name}: {action.reason}")
            if action.role == "writer" and wf is not None:
                state = self._save(
                    state, workflow=wf.model_copy(update={"writer_moved_at": now, "writer_change_id": change_id, "step": "restoring redundancy"})
                )
                emit("WriterMoved", name)
            self.history(name, f"{action.role}_dns", f"{action.describe()} ({action.reason})", change_id=change_id)
            return state
        if isinstance(action, RecordPrimary):
            self._protect(topo, region, action.instance)
            update = {"primary": action.instance, "primary_region": None if region == cfg.region else region}
            if wf is not None:
                update["workflow"] = wf.model_copy(update={"promoted_at": wf.promoted_at or now})
            state = self._save(state, **update)
            self.history(name, "primary_recorded", f"{action.instance} is now the primary: {action.reason}", instance=action.instance)
            return state
        if isinstance(action, CreateReplica):
            if action.scaling is not None:  # the cooldown starts before the call: a crash must not double it
                state = self._scaling_step(state, "last_scale_out_at", now, lambda: self._create(region, action))
            else:
                self._create(region, action)
            self.history(name, "replica_created", f"{action.describe()}: {action.reason}", instance=action.instance, region=action.region or region)
            emit("ReplicaCreated", name)
            return state
        if isinstance(action, DeleteInstance):
            if action.scaling is not None:
                state = self._scaling_step(state, "last_scale_in_at", now, lambda: self._delete(region, action.instance, state))
            else:
                self._delete(region, action.instance, state)
            self.history(name, "replica_removed" if action.scaling else "orphan_deleted", f"{action.describe()}: {action.reason}", instance=action.instance)
            emit("ReplicaRemoved", name)
            return state
        if isinstance(action, ModifyMultiAz):
            self.rds.modify_multi_az(region, action.instance, action.enabled)
            self.history(
                name,
                "multi_az",
                f"{action.describe()}: {action.reason}. AWS builds the standby from a snapshot meanwhile; writes may slow until it is in sync",
                instance=action.instance,
                enabled=action.enabled,
            )
            self.notify(topo, "multi_az_changed", action.describe(), instance=action.instance, enabled=action.enabled, reason=action.reason)
            return state
        if isinstance(action, RecordHandled):
            assert action.at is not None
            return self._save(state, handled_alarms={**state.handled_alarms, action.alarm: action.at})
        if isinstance(action, RetargetAlarms):
            return self._retarget(topo, state, action)
        if isinstance(action, StopInstance):
            self.rds.stop(region, action.instance)
            self.history(name, "old_primary_stopped", f"{action.describe()}: {action.reason}", instance=action.instance)
            return state
        if isinstance(action, VerifyWriter):
            assert wf is not None
            state = self._save(state, workflow=wf.model_copy(update={"verified_at": now, "step": "verified; restoring redundancy"}))
            self.history(name, "writer_verified", f"{action.describe()}: {action.reason}", instance=action.instance)
            emit("WriterVerified", name)
            return state
        if isinstance(action, CompleteWorkflow):
            assert wf is not None
            took = (now - wf.started_at).total_seconds()
            state = self._save(state, workflow=None, last_failover_completed_at=now)
            message = f"{wf.kind} complete: {wf.new_primary} is the primary ({took:.0f}s after it started)"
            self.history(name, f"{wf.kind}_completed", message, workflow=wf.id, seconds=round(took, 1))
            emit(f"{wf.kind.capitalize()}Completed", name)
            emit(f"{wf.kind.capitalize()}Seconds", name, took, unit=MetricUnit.Seconds)
            self.notify(
                topo,
                f"{wf.kind}_completed",
                message,
                unplanned=wf.kind == "failover",
                old_primary=wf.old_primary,
                new_primary=wf.new_primary,
                workflow=wf.id,
                started_at=wf.started_at.isoformat(),
                seconds=round(took, 1),
            )
            self.post_hook(topo, wf, "completed", message)
            return state
        if isinstance(action, AbortWorkflow):
            assert wf is not None
            state = self._save(state, workflow=None, blocked=Blocked(at=now, reason=action.reason, trigger=wf.trigger))
            self.history(name, f"{wf.kind}_aborted", f"{wf.kind} aborted: {action.reason}", workflow=wf.id)
            emit("FailoverBlocked", name)
            self.notify(topo, f"{wf.kind}_aborted", action.reason, old_primary=wf.old_primary, new_primary=wf.new_primary, unplanned=wf.kind == "failover")
            self.post_hook(topo, wf, "aborted", action.reason)
            return state
        raise TypeError(f"no executor for {type(action).__name__}")
