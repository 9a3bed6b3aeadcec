"""Read capacity and standby management: replica scaling, Multi-AZ, operator replica changes, and the
sync on RDS events. The same shape as failover: lease, one snapshot, a pure plan, the executor.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import TAG_CLUSTER
from .core.actions import Plan, RecordHandled, Scaling
from .core.config import ClusterConfig
from .core.errors import AwsError, InstanceNotFoundError, LeaseLostError, StateConflictError
from .core.models import AVAILABLE, AlarmStatus, ClusterState, Instance, MultiAzChoice, Topology, same_instant
from .core.planner import plan_add_replica, plan_multi_az, plan_remove_replica, plan_scale, reader_verdicts
from .events import AlarmTrigger, RdsEvent
from .observability import emit, logger
from .results import Result
from .snapshot import known_ids

if TYPE_CHECKING:
    from .service import Service

# What AWS does while Multi-AZ changes: the CLI and the notifications say it.
MULTI_AZ_ON_NOTE = (
    "AWS takes a snapshot of the primary and builds the standby from it in another AZ; no outage, but write latency may rise until the standby is in sync"
)
MULTI_AZ_OFF_NOTE = "AWS removes the standby; no outage, and until Multi-AZ is on again a primary failure is recovered only by promoting a replica"


class Capacity:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    # -- alarms --------------------------------------------------------------------------------
    def route(self, alarm: str) -> tuple[ClusterConfig, str] | None:
        """The cluster and role (failover, scale_out, scale_in, multi_az_on, multi_az_off) of an alarm."""
        for cfg in self.svc.clusters():
            for name, role in cfg.alarms.roles():
                if name == alarm:
                    return cfg, role
        return None

    def handle_alarm(self, trigger: AlarmTrigger, deadline: datetime, roles: tuple[str, ...]) -> Result:
        """A scaling or Multi-AZ alarm transition, for the function that serves `roles`."""
        routed = self.route(trigger.alarm_name)
        if routed is None:
            return self._ignored(None, f"alarm {trigger.alarm_name} is not mapped to any cluster's alarms")
        cfg, role = routed
        if role not in roles:
            return self._ignored(cfg.name, f"alarm {trigger.alarm_name} is mapped to alarms.{role}, which another function handles")
        if not trigger.is_alarm_transition:
            return self._ignored(cfg.name, f"{trigger.describe()}: not a transition into ALARM (from {trigger.previous_state})")
        return self.act_on_alarm(cfg, role, trigger.alarm_name, trigger.state_time, trigger.describe(), deadline)

    def act_on_alarm(self, cfg: ClusterConfig, role: str, alarm: str, at: datetime, trigger: str, deadline: datetime) -> Result:
        if role in ("scale_out", "scale_in"):
            direction: Scaling = "scale_out" if role == "scale_out" else "scale_in"
            return self.scale(cfg, direction, trigger, deadline, alarm=(alarm, at))
        return self.set_multi_az(cfg, role == "multi_az_on", trigger, deadline, alarm=(alarm, at))

    # -- scaling -------------------------------------------------------------------------------
    def scale(
        self, cfg: ClusterConfig, direction: Scaling, trigger: str, deadline: datetime, alarm: tuple[str, datetime] | None = None, quiet: bool = False
    ) -> Result:
        """One replica more or less. `quiet`: a refusal is not recorded (reconcile re-checking an alarm still in ALARM)."""

        def plan(topo: Topology) -> Plan:
            return plan_scale(topo, direction, uuid.uuid4().hex[:6], trigger)

        return self._run(cfg, direction, trigger, deadline, plan, alarm=alarm, quiet=quiet, automatic=alarm is not None or quiet)

    def add_replica(self, cfg: ClusterConfig, by: str, deadline: datetime, region: str | None = None, az: str | None = None) -> Result:
        return self._run(cfg, "replica_added", f"rds-ha replicas add by {by}", deadline, lambda t: plan_add_replica(t, uuid.uuid4().hex[:6], by, region, az))

    def remove_replica(self, cfg: ClusterConfig, instance: str, by: str, deadline: datetime, force: bool = False) -> Result:
        return self._run(cfg, "replica_removed", f"rds-ha replicas remove by {by}", deadline, lambda t: plan_remove_replica(t, instance, by, force))

    # -- Multi-AZ ------------------------------------------------------------------------------
    def set_multi_az(self, cfg: ClusterConfig, enabled: bool, by: str, deadline: datetime, alarm: tuple[str, datetime] | None = None) -> Result:
        """Make `enabled` the desired state (kept until the next apply) and apply it now."""
        choice = MultiAzChoice(enabled=enabled, by=by, at=self.svc.clock.now())

        def plan(topo: Topology) -> Plan:
            return plan_multi_az(replace(topo, state=topo.state.model_copy(update={"multi_az": choice})))

        result = self._run(cfg, "multi_az", by, deadline, plan, alarm=alarm, update={"multi_az": choice}, automatic=alarm is not None)
        if result.outcome in ("done", "waiting"):
            result.reason += f". {MULTI_AZ_ON_NOTE if enabled else MULTI_AZ_OFF_NOTE}"
        return result

    # -- the common run ------------------------------------------------------------------------
    def _run(
        self,
        cfg: ClusterConfig,
        kind: str,
        trigger: str,
        deadline: datetime,
        planner: Callable[[Topology], Plan],
        alarm: tuple[str, datetime] | None = None,
        update: dict[str, Any] | None = None,
        quiet: bool = False,
        automatic: bool = False,
    ) -> Result:
        """Under the lease: read, plan, and act (or record why not). Automatic runs (alarms, reconcile)
        change nothing while the cluster is paused; an operator's command is its own authority.
        `quiet`: nothing is recorded unless something is done (reconcile re-checking every minute)."""
        svc = self.svc
        try:
            with svc.lease(cfg.name, deadline, svc.lease_wait_seconds):
                topo = svc.snapshots.read(cfg)
                state = topo.state
                if alarm is not None and same_instant(state.handled_alarms.get(alarm[0]), alarm[1]):
                    return Result(cfg.name, "duplicate", f"this transition of {alarm[0]} was handled already")
                plan = planner(topo)
                mark = (RecordHandled(reason=trigger, alarm=alarm[0], at=alarm[1]),) if alarm is not None else ()
                if automatic and state.paused is not None and plan.outcome == "start":
                    would = "; ".join(f"would {a.describe()}" for a in plan.mutating)
                    reason = f"paused by {state.paused.by}; {would}"
                    if quiet:
                        return Result(cfg.name, "paused", reason)
                    svc.executor.history(cfg.name, f"{kind}_paused", reason, trigger=trigger)
                    svc.executor.notify(topo, f"{kind}_paused", reason, trigger=trigger)
                    svc.executor.execute(topo, Plan("paused", reason, mark))
                    return Result(cfg.name, "paused", reason, [f"would {a.describe()}" for a in plan.mutating])
                if update:
                    topo = replace(topo, state=svc.table.put_state(state.model_copy(update=update)))
                    svc.executor.history(cfg.name, f"{kind}_desired", f"{trigger}: desired state {update}", trigger=trigger)
                if plan.outcome != "start":
                    if not quiet:
                        svc.executor.history(cfg.name, f"{kind}_{plan.outcome}", f"{trigger}: {plan.reason}", trigger=trigger)
                        if plan.outcome == "refused":
                            svc.executor.notify(topo, f"{kind}_refused", plan.reason, trigger=trigger)
                    if mark:
                        svc.executor.execute(topo, Plan(plan.outcome, plan.reason, mark))
                    return Result(cfg.name, plan.outcome, plan.reason)
                out = svc.executor.execute(topo, Plan(plan.outcome, plan.reason, plan.actions + mark))
                emit("CapacityChanged", cfg.name)
                if out.error:
                    return Result(cfg.name, "error", f"{plan.reason}: {out.error}", out.done, error=out.error)
                return Result(cfg.name, "done", plan.reason, out.done)
        except StateConflictError as exc:
            return Result(cfg.name, "busy", f"state changed concurrently; try again ({exc})")
        except LeaseLostError as exc:
            return svc._lease_lost(cfg, trigger, exc)
        except AwsError as exc:
            return svc._aws_failed(cfg, trigger, exc)

    def _ignored(self, cluster: str | None, reason: str) -> Result:
        logger.info(f"ignored: {reason}")
        return Result(cluster, "ignored", reason)

    # -- reconcile: alarms that stay in ALARM ----------------------------------------------------
    def alarms_still_firing(self, cfg: ClusterConfig, alarms: dict[str, AlarmStatus], deadline: datetime) -> Result | None:
        """Scaling alarms that stay in ALARM scale again once the cooldown allows (as Application Auto
        Scaling does); a Multi-AZ alarm whose delivery was lost is acted on. At most one per cluster per run."""
        if not any(name in alarms for name, role in cfg.alarms.roles() if role != "failover"):
            return None  # the common case: no state read for a cluster with no capacity alarm firing
        state = self.svc.table.get_state(cfg.name)
        if state is None or state.workflow is not None:
            return None
        for name, role in cfg.alarms.roles():
            status = alarms.get(name)
            if role == "failover" or status is None or status.updated_at is None:
                continue
            handled = same_instant(state.handled_alarms.get(name), status.updated_at)
            if role.startswith("multi_az") and handled:
                continue
            trigger = f"alarm {name} in ALARM (reconcile)"
            if role in ("scale_out", "scale_in"):
                direction: Scaling = "scale_out" if role == "scale_out" else "scale_in"
                result = self.scale(cfg, direction, trigger, deadline, alarm=None if handled else (name, status.updated_at), quiet=handled)
                if result.outcome == "done" or not handled:
                    return result
                continue
            return self.act_on_alarm(cfg, role, name, status.updated_at, trigger, deadline)
        return None

    # -- RDS events ----------------------------------------------------------------------------
    def cluster_for_instance(self, event: RdsEvent) -> ClusterConfig | None:
        """The cluster an instance belongs to: its tag (RDS sends tags with the event), the config's
        primary, the instance's tag as RDS describes it, the cluster's state, or its reader records."""
        configs = [c for c in self.svc.clusters() if event.region in c.regions]
        by_name = {c.name: c for c in configs}
        if event.tags.get(TAG_CLUSTER) in by_name:
            return by_name[event.tags[TAG_CLUSTER]]
        for cfg in configs:
            if cfg.primary == event.instance:
                return cfg
        try:
            inst = self.svc.rds.describe(event.region, event.instance)
            for cfg in configs:
                if inst.cluster_tag == cfg.name:
                    return cfg
        except InstanceNotFoundError:
            pass
        for cfg in configs:
            state = self.svc.table.get_state(cfg.name)
            if state is not None and (event.instance in known_ids(state) or event.instance in state.replication_stopped):
                return cfg
        # Gone, and untagged in the event: a reader record still naming it tells whose it was.
        for cfg in configs:
            if cfg.dns.reader and any(r.set_identifier == event.instance for r in self.svc.route53.records(cfg.dns.zone_id, cfg.dns.reader)):
                return cfg
        return None

    def rds_event(self, event: RdsEvent, deadline: datetime) -> Result:
        """Re-sync the instance's cluster: DNS never names an instance that is gone or stopped."""
        svc = self.svc
        if event.kind is None:
            return self._ignored(None, f"{event.describe()}: not an event rds-ha acts on")
        cfg = self.cluster_for_instance(event)
        if cfg is None:
            return self._ignored(None, f"{event.describe()}: {event.instance} is not a member of any cluster")
        try:
            with svc.lease(cfg.name, deadline, svc.lease_wait_seconds):
                self._note_replication(cfg, event)
                svc.table.add_history(cfg.name, svc.clock.now(), "rds_event", f"{event.describe()}: {event.message}", {"event_id": event.event_id})
                result = svc._drive(cfg, deadline, dns_only=True)
                result.reason = f"{event.describe()}; {result.reason}"
                return result
        except LeaseLostError as exc:
            return svc._lease_lost(cfg, event.describe(), exc)
        except AwsError as exc:
            return svc._aws_failed(cfg, event.describe(), exc)
        except StateConflictError as exc:
            return Result(cfg.name, "busy", f"state changed concurrently; reconcile repeats the sync ({exc})")

    def _note_replication(self, cfg: ClusterConfig, event: RdsEvent) -> None:
        """Replication stopped: the replica leaves the reader set until a newer ReplicaLag shows it back."""
        state = self.svc.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)
        stopped = dict(state.replication_stopped)
        if event.kind == "replication_stopped":
            if event.instance in stopped and stopped[event.instance] >= event.at:
                return
            stopped[event.instance] = event.at
        elif event.kind in ("replication_resumed", "deleted", "created") and event.instance in stopped:
            if stopped[event.instance] > event.at:
                return  # events arrive out of order: a stop newer than this resume still holds
            del stopped[event.instance]
        else:
            return
        self.svc.table.put_state(state.model_copy(update={"replication_stopped": stopped}))

    # -- waiting ---------------------------------------------------------------------------------
    def locate(self, cfg: ClusterConfig, instance: str) -> str:
        """The region of the cluster's regions `instance` is in (the cluster's own if none)."""
        for region in cfg.regions:
            if self.svc.rds.describe_ids(region, [instance]):
                return region
        return cfg.region

    def watch(self, region: str, instance: str, done: Callable[[Instance | None], bool], deadline: datetime, on_change: Callable[[str], None]) -> bool:
        """Poll `instance` until `done` holds (True) or the deadline passes (False), reporting each new
        AWS status (with Multi-AZ) as it appears."""
        svc, last = self.svc, None
        while True:
            try:
                inst: Instance | None = svc.rds.describe(region, instance)
            except InstanceNotFoundError:
                inst = None
            label = "deleted" if inst is None else inst.status + (", Multi-AZ" if inst.multi_az else ", single-AZ")
            if label != last:
                on_change(label)
                last = label
            if done(inst):
                return True
            if svc.clock.now() + timedelta(seconds=svc.poll_seconds) > deadline:
                return False
            svc.clock.sleep(svc.poll_seconds)

    # -- status --------------------------------------------------------------------------------
    def status(self, topo: Topology) -> dict[str, Any]:
        """The reader set with why each replica is in or out, scaling cooldowns and Multi-AZ."""
        cfg, state, primary = topo.cluster, topo.state, topo.primary
        verdicts = reader_verdicts(topo, primary, frozenset(state.fenced)) if primary is not None and cfg.dns.reader else []
        desired = topo.desired_multi_az
        return {
            "reader_set": [{"id": v.instance, "serving": v.serving, "reason": v.reason} for v in verdicts],
            "reader_fallback": bool(primary and cfg.dns.reader and not any(v.serving for v in verdicts)),
            "multi_az": {
                "actual": primary.multi_az if primary else None,
                "desired": desired,
                "set_by": state.multi_az.by if state.multi_az else ("config" if cfg.multi_az is not None else None),
                "in_progress": bool(primary and primary.status != AVAILABLE and desired is not None and primary.multi_az != desired),
            },
            "scaling": {
                "min": cfg.replicas.min,
                "max": cfg.replicas.max,
                "last_scale_out_at": state.last_scale_out_at.isoformat() if state.last_scale_out_at else None,
                "last_scale_in_at": state.last_scale_in_at.isoformat() if state.last_scale_in_at else None,
            },
        }
