"""Read capacity and standby management: replica scaling, Multi-AZ, and an operator's replica changes.
The same shape as failover: lease, one snapshot, a pure plan, the executor."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..core.actions import Plan, RecordHandled, Scaling
from ..core.alarms import Firing, route
from ..core.config import AlarmRole, ClusterConfig
from ..core.models import MultiAzChoice, Topology
from ..core.planner import pause_limitation, plan_add_replica, plan_multi_az, plan_remove_replica, plan_retire, plan_scale
from ..events import AlarmTrigger
from .deps import Deps
from .results import Result
from .runs import under_lease
from .snapshot import NOTHING_KNOWN, Known

# What AWS does while Multi-AZ changes: the CLI and the notifications say it.
MULTI_AZ_ON_NOTE = (
    "AWS takes a snapshot of the primary and builds the standby from it in another AZ; no outage, but write latency may rise until the standby is in sync"
)
MULTI_AZ_OFF_NOTE = "AWS removes the standby; no outage, and until Multi-AZ is on again a primary failure is recovered only by promoting a replica"

Planner = Callable[[Topology], Plan]
Alarm = tuple[str, datetime]


class Capacity:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    # -- alarms --------------------------------------------------------------------------------
    def handle_alarm(self, trigger: AlarmTrigger, deadline: datetime, roles: tuple[str, ...]) -> Result:
        """A scaling or Multi-AZ alarm transition, for the function that serves `roles`."""
        routed = route(self.d.table.configs(), trigger.alarm_name)
        if routed is None:
            return self.d.recorder.ignored(None, f"alarm {trigger.alarm_name} is not mapped to any cluster's alarms")
        cfg, role = routed
        if role not in roles:
            return self.d.recorder.ignored(cfg.name, f"alarm {trigger.alarm_name} is mapped to alarms.{role}, which another function handles")
        if not trigger.is_alarm_transition:
            return self.d.recorder.ignored(cfg.name, f"{trigger.describe()}: not a transition into ALARM (from {trigger.previous_state})")
        return self._act(cfg, role, (trigger.alarm_name, trigger.state_time), trigger.describe(), deadline)

    def _act(self, cfg: ClusterConfig, role: AlarmRole, alarm: Alarm, trigger: str, deadline: datetime) -> Result:
        if role in ("scale_out", "scale_in"):
            return self.scale(cfg, "scale_out" if role == "scale_out" else "scale_in", trigger, deadline, alarm=alarm)
        return self.set_multi_az(cfg, role == "multi_az_on", trigger, deadline, alarm=alarm)

    def still_firing(self, cfg: ClusterConfig, seen: list[Firing], deadline: datetime) -> Result | None:
        """Reconcile's look at capacity alarms in ALARM: scaling alarms that stay in ALARM scale again once
        the cooldown allows (as Application Auto Scaling does); a Multi-AZ alarm whose delivery was lost is
        acted on. At most one change per cluster per run."""
        for f in seen:
            if f.role == "failover" or (f.role.startswith("multi_az") and f.handled):
                continue
            trigger = f"alarm {f.alarm} in ALARM (reconcile)"
            if f.role in ("scale_out", "scale_in"):
                direction: Scaling = "scale_out" if f.role == "scale_out" else "scale_in"
                result = self.scale(cfg, direction, trigger, deadline, alarm=None if f.handled else (f.alarm, f.at), quiet=f.handled)
                if result.outcome == "done" or not f.handled:
                    return result
                continue
            return self._act(cfg, f.role, (f.alarm, f.at), trigger, deadline)
        return None

    # -- changes -------------------------------------------------------------------------------
    def scale(self, cfg: ClusterConfig, direction: Scaling, trigger: str, deadline: datetime, alarm: Alarm | None = None, quiet: bool = False) -> Result:
        """One replica more or less. `quiet`: a refusal is not recorded (reconcile re-checking an alarm still in ALARM)."""
        plan: Planner = lambda t: plan_scale(t, direction, uuid.uuid4().hex[:6], trigger)  # noqa: E731
        return self._run(cfg, direction, trigger, deadline, plan, alarm, quiet=quiet, automatic=alarm is not None or quiet)

    def add_replica(self, cfg: ClusterConfig, by: str, deadline: datetime, region: str | None = None, az: str | None = None) -> Result:
        return self._run(cfg, "replica_added", f"rds-ha replicas add by {by}", deadline, lambda t: plan_add_replica(t, uuid.uuid4().hex[:6], by, region, az))

    def remove_replica(self, cfg: ClusterConfig, instance: str, by: str, deadline: datetime, force: bool = False) -> Result:
        return self._run(cfg, "replica_removed", f"rds-ha replicas remove by {by}", deadline, lambda t: plan_remove_replica(t, instance, by, force))

    def retire(self, cfg: ClusterConfig, instance: str, by: str, deadline: datetime, final_snapshot: bool = True, dry_run: bool = False) -> Result:
        """Delete the fenced old primary `instance` after a final snapshot (rds-ha retire)."""
        named = Known(hint=frozenset({instance}))  # read even if nothing of the cluster's names it
        if dry_run:
            return Result.of(cfg.name, plan_retire(self.d.snapshots.read(cfg, known=named, fence=False), instance, by, final_snapshot))
        return self._run(cfg, "retire", f"rds-ha retire by {by}", deadline, lambda t: plan_retire(t, instance, by, final_snapshot), known=named)

    def set_multi_az(self, cfg: ClusterConfig, enabled: bool, by: str, deadline: datetime, alarm: Alarm | None = None) -> Result:
        """Make `enabled` the desired state (kept until the next apply) and apply it now."""
        choice = MultiAzChoice(enabled=enabled, by=by, at=self.d.clock.now())

        def plan(topo: Topology) -> Plan:
            return plan_multi_az(replace(topo, state=topo.state.model_copy(update={"multi_az": choice})))

        result = self._run(cfg, "multi_az", by, deadline, plan, alarm, update={"multi_az": choice}, automatic=alarm is not None)
        if result.outcome in ("done", "waiting"):
            result = replace(result, reason=f"{result.reason}. {MULTI_AZ_ON_NOTE if enabled else MULTI_AZ_OFF_NOTE}")
        return result

    # -- the common run ------------------------------------------------------------------------
    def _run(
        self,
        cfg: ClusterConfig,
        kind: str,
        trigger: str,
        deadline: datetime,
        planner: Planner,
        alarm: Alarm | None = None,
        update: dict[str, Any] | None = None,
        quiet: bool = False,
        automatic: bool = False,
        known: Known = NOTHING_KNOWN,
    ) -> Result:
        """Under the lease: read, plan, and act (or record why not). Automatic runs (alarms, reconcile)
        change nothing while the cluster is paused; an operator's command is its own authority.
        `quiet`: nothing is recorded unless something is done (reconcile re-checking every minute)."""

        def body() -> Result:
            topo = self.d.snapshots.read(cfg, known=known, fence=False)
            handled = topo.state.handled(*alarm) if alarm is not None else None
            if alarm is not None and handled is not None:
                return Result(cfg.name, "duplicate", handled.describe(alarm[0]))
            mark = (RecordHandled(reason=trigger, alarm=alarm[0], at=alarm[1]),) if alarm is not None else ()
            plan = planner(topo)
            paused = pause_limitation(topo.state, automatic)
            if paused is not None and plan.outcome == "start":
                return self._paused(topo, kind, trigger, f"{paused}; " + "; ".join(f"would {a.describe()}" for a in plan.mutating), plan, mark, quiet)
            if update:
                topo = replace(topo, state=self.d.table.put_state(topo.state.model_copy(update=update)))
                self.d.recorder.history(cfg.name, f"{kind}_desired", f"{trigger}: desired state {update}", trigger=trigger)
            if plan.outcome != "start":
                return self._not_now(topo, kind, trigger, plan, mark, quiet)
            out = self.d.executor.execute(topo, Plan(plan.outcome, plan.reason, plan.actions + mark))
            self.d.recorder.metric("CapacityChanged", cfg.name)
            if out.error:
                return Result(cfg.name, "error", f"{plan.reason}: {out.error}", tuple(out.done), error=out.error)
            return Result(cfg.name, "done", plan.reason, tuple(out.done))

        return under_lease(self.d, cfg, trigger, body)

    def _paused(self, topo: Topology, kind: str, trigger: str, reason: str, plan: Plan, mark: tuple[RecordHandled, ...], quiet: bool) -> Result:
        name = topo.cluster.name
        if quiet:
            return Result(name, "paused", reason)
        self.d.recorder.history(name, f"{kind}_paused", reason, trigger=trigger)
        self.d.recorder.notify(topo.cluster, f"{kind}_paused", reason, trigger=trigger)
        self.d.executor.execute(topo, Plan("paused", reason, mark))
        return Result(name, "paused", reason, tuple(f"would {a.describe()}" for a in plan.mutating))

    def _not_now(self, topo: Topology, kind: str, trigger: str, plan: Plan, mark: tuple[RecordHandled, ...], quiet: bool) -> Result:
        """A refusal (or nothing to do): recorded unless quiet, notified when refused; the alarm's transition handled."""
        if not quiet:
            self.d.recorder.history(topo.cluster.name, f"{kind}_{plan.outcome}", f"{trigger}: {plan.reason}", trigger=trigger)
            if plan.outcome == "refused":
                self.d.recorder.notify(topo.cluster, f"{kind}_refused", plan.reason, trigger=trigger)
        if mark:
            self.d.executor.execute(topo, Plan(plan.outcome, plan.reason, mark))
        return Result(topo.cluster.name, plan.outcome, plan.reason)
