"""Alarm-driven and manual failover: decide on a request under the cluster's lease, record the decision
(refused, blocked, vetoed...), mark the alarm's transition handled, and drive the workflow it starts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from ..core.actions import Plan, RecordHandled, StartWorkflow
from ..core.alarms import Firing, route
from ..core.config import ClusterConfig
from ..core.errors import AwsError, StateConflictError
from ..core.models import AlarmStatus, Blocked, ClusterState, Topology
from ..core.planner import FailoverRequest, current_transition, decide_failover, outline
from ..events import AlarmTrigger, ProbeVerdict
from ..observability import logger
from .deps import Deps
from .drive import Drive
from .results import Result, joined
from .runs import under_lease
from .snapshot import Known

# Decisions that are notified, with the metric each one counts in.
_NOTIFIED = {"blocked": "FailoverBlocked", "vetoed": "FailoverBlocked", "paused": "FailoverPaused", "deferred": None, "refused": "FailoverRefused"}


# A verdict stamped this far in the future is another clock's, not the probe's (runs' clocks agree within 5 s).
CLOCK_SKEW_SECONDS = 5


def request_for(trigger: AlarmTrigger) -> FailoverRequest:
    """The failover request an alarm transition makes."""
    return FailoverRequest(
        trigger=trigger.describe(),
        failure_time=trigger.state_time,
        workflow_id=uuid.uuid4().hex[:6],
        automatic=True,
        alarm_name=trigger.alarm_name,
        alarm_instance=trigger.instance,
    )


def standing_request(firing: Firing, alarm: AlarmStatus) -> FailoverRequest:
    """Reconcile's request about a failover alarm still in ALARM (core.alarms.standing_failover): decided again,
    its handled record deduplicating only the record and the notification of the same answer."""
    why = "still in ALARM at reconcile" if firing.handled else "found in ALARM by reconcile (its delivery was lost or late)"
    trigger = AlarmTrigger(
        alarm_name=firing.alarm, state="ALARM", previous_state=None, state_time=firing.at, reason=why, dimensions=dict(alarm.dimensions), shape="reconcile"
    )
    return replace(request_for(trigger), standing=True)


def with_probe_word(deps: Deps, cfg: ClusterConfig, request: FailoverRequest, alarms: Mapping[str, AlarmStatus]) -> FailoverRequest:
    """A failover alarm in ALARM for want of datapoints, on a probed cluster: the request carries the probe's
    newest word on the primary since shortly before the alarm's transition (guards.uncorroborated judges it)."""
    alarm = alarms.get(request.alarm_name or "")
    if alarm is None or not alarm.missing_data or cfg.probe is None or not request.automatic:
        return request
    now, primary = deps.clock.now(), deps.snapshots.state(cfg).primary
    since = (alarm.updated_at or now) - timedelta(seconds=cfg.probe.max_age_seconds)
    try:
        seen = deps.cloudwatch.primary_health_after(cfg.region, cfg.name, primary, since, now)
    except AwsError as exc:
        logger.warning(f"{cfg.name}: the probe's PrimaryHealthy not read ({exc}): a metric-absence alarm is not corroborated")
        seen = None
    return replace(request, metric_absence=True, probe_health=seen)


def decided(cfg: ClusterConfig, topo: Topology, plan: Plan) -> Result:
    """A decision as every surface shows it (dry run, handler, CLI): with its candidates and, when it
    starts a workflow, that workflow's steps. Where the SQL probe and CloudWatch disagree a log line says so."""
    for v in plan.candidates:
        if v.disagreement is not None:
            logger.warning(f"{v.instance}: {v.disagreement}; the probe's engine-side reading is used", extra={"cluster": cfg.name})
    start = next((a for a in plan.actions if isinstance(a, StartWorkflow)), None)
    steps = tuple(outline(topo, start.workflow)) if start is not None and start.workflow is not None else ()
    return Result.of(cfg.name, plan, steps)


class Failover:
    def __init__(self, deps: Deps, drive: Drive) -> None:
        self.d, self.drive = deps, drive

    def cluster_for(self, alarm: str) -> ClusterConfig | None:
        """The cluster whose alarms.failover maps `alarm`."""
        found = route(self.d.table.configs(), alarm)
        return found[0] if found is not None and found[1] == "failover" else None

    def handle_alarm(self, trigger: AlarmTrigger, deadline: datetime, cfg: ClusterConfig | None = None) -> Result:
        """A parsed alarm transition: ignore it (saying why) or fail the cluster over."""
        cfg = cfg or self.cluster_for(trigger.alarm_name)
        if cfg is None:
            return self.d.recorder.ignored(None, f"alarm {trigger.alarm_name} is not mapped to any cluster's alarms.failover")
        if not trigger.is_alarm_transition:
            if trigger.state == "OK":
                self._clear_blocked(cfg, trigger)
            return self.d.recorder.ignored(cfg.name, f"{trigger.describe()}: not a transition into ALARM (from {trigger.previous_state})")
        return self.failover(cfg, request_for(trigger), deadline)

    def handle_verdict(self, verdict: ProbeVerdict, deadline: datetime, cfg: ClusterConfig | None = None) -> Result:
        """The probe's confirmed verdict: a failover request about `verdict.primary`, judged as an alarm's is
        (lease, guards, lag) once it is known to be the probe's own and fresh: a verdict older than
        probe.max_age_seconds (a late retry, a replay) decides nothing."""
        cfg = cfg or next((c for c in self.d.table.configs() if c.name == verdict.cluster), None)
        if cfg is None or cfg.probe is None or not cfg.probe.direct_failover:
            why = "is not a cluster" if cfg is None else "has no probe.direct_failover"
            return self.d.recorder.ignored(cfg.name if cfg else None, f"{verdict.describe()}: {verdict.cluster} {why}")
        age = (self.d.clock.now() - verdict.at).total_seconds()
        if age > cfg.probe.max_age_seconds or age < -CLOCK_SKEW_SECONDS:
            return self.d.recorder.ignored(cfg.name, f"{verdict.describe()}: {age:.0f}s old, not within probe.max_age_seconds ({cfg.probe.max_age_seconds}s)")
        newer = self._contradicted(cfg, verdict)
        if newer is not None:
            return self.d.recorder.ignored(cfg.name, f"{verdict.describe()}: {newer}")
        request = FailoverRequest(
            trigger=verdict.describe(), failure_time=verdict.at, workflow_id=uuid.uuid4().hex[:6], automatic=True, alarm_instance=verdict.primary
        )
        return self.failover(cfg, request, deadline)

    def _contradicted(self, cfg: ClusterConfig, verdict: ProbeVerdict) -> str | None:
        """A newer word about the verdict's primary than the verdict (a delivery can be late, the probe goes on
        sampling): its newest sample since found it healthy, or a failover alarm of it went OK since. An alarm
        OK since before the verdict says nothing: the probe's path is there to be faster than the alarm."""
        now = self.d.clock.now()
        sample = self.d.cloudwatch.primary_health_after(cfg.region, cfg.name, verdict.primary, verdict.at, now)
        if sample is not None and sample[1]:
            return f"the probe's newer sample at {sample[0].isoformat(timespec='seconds')} found {verdict.primary} healthy: the newer word wins"
        alarms = self.d.cloudwatch.alarms(cfg.region, cfg.alarms.failover) if cfg.alarms.failover else {}
        for alarm in alarms.values():
            watched = alarm.dimensions.get("DBInstanceIdentifier")
            if alarm.state == "OK" and alarm.updated_at is not None and alarm.updated_at > verdict.at and watched in (None, verdict.primary):
                return f"alarm {alarm.name} went OK at {alarm.updated_at.isoformat(timespec='seconds')}, after the verdict: the newer word wins"
        return None

    def failover(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, dry_run: bool = False) -> Result:
        if dry_run:  # reads and plans only: no lease, no writes
            return self.decide(cfg, request, deadline, dry_run=True)
        return under_lease(self.d, cfg, request.trigger, lambda: self.decide(cfg, request, deadline))

    def decide(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, dry_run: bool = False) -> Result:
        """Decide on a failover request and act on it. The caller holds the lease (unless dry run)."""
        alarms = self.d.cloudwatch.alarms(cfg.region, cfg.alarms.failover) if request.alarm_name is not None and cfg.alarms.failover else None
        # The lag window ends at the alarm's current transition, whatever time the delivery carried.
        request = current_transition(request, alarms or {})
        request = with_probe_word(self.d, cfg, request, alarms or {})
        topo = self.d.snapshots.read(cfg, failure_time=request.failure_time, known=Known(alarms=alarms))
        plan = decide_failover(topo, request)
        result = decided(cfg, topo, plan)
        if dry_run:
            return result
        if topo.state.workflow is not None and request.automatic:
            # Another delivery (or a crashed run) started this failover: help finish it.
            progress = self.drive.run(cfg, deadline)
            return replace(progress, reason=joined(plan.reason, f"resumed: {progress.reason}"))
        if plan.outcome == "duplicate":
            logger.info(plan.reason, extra={"cluster": cfg.name})
            return result
        veto = self.d.hooks.veto(topo, plan, request.trigger) if plan.outcome == "start" else None
        if veto is not None:
            plan = Plan("vetoed", veto, candidates=plan.candidates, chosen=plan.chosen)
            result = replace(result, outcome="vetoed", reason=veto, actions=(), steps=())
        if plan.outcome != "start" and self._said_already(topo, request, plan):
            return result  # the same answer to the same standing request: recorded and notified when it was first given
        state = self.d.executor.execute(topo, plan).state if plan.outcome == "start" else self.record(topo, plan, request.trigger)
        if request.alarm_name is not None:
            # Whatever was decided, this transition is now handled: no other delivery takes it again. While the
            # alarm stays in ALARM, reconcile decides it again (standing_failover) and records only a new answer.
            mark = RecordHandled(reason=request.trigger, alarm=request.alarm_name, at=request.failure_time, outcome=plan.outcome)
            state = self.d.executor.mark_handled(topo, state, mark)
        if plan.outcome != "start":
            return result
        # The decision's snapshot is milliseconds old: start the workflow from it, not a new read.
        return result.then(self.drive.run(cfg, deadline, first=replace(topo, state=state)))

    @staticmethod
    def _said_already(topo: Topology, request: FailoverRequest, plan: Plan) -> bool:
        """A standing request answered as its transition was last answered (refused, blocked...): nothing new to say."""
        if not request.standing or request.alarm_name is None:
            return False
        seen = topo.state.handled(request.alarm_name, request.failure_time)
        return seen is not None and seen.outcome == plan.outcome

    def record(self, topo: Topology, plan: Plan, trigger: str) -> ClusterState:
        """A decision that starts nothing, recorded; blocked and vetoed ones are kept in the state (status
        shows them until the alarm clears), and all but an ignored one notified."""
        cfg, state, rec = topo.cluster, topo.state, self.d.recorder
        details = {"candidates": {v.instance: v.reason for v in plan.candidates}} if plan.candidates else {}
        rec.history(cfg.name, f"failover_{plan.outcome}", plan.reason, trigger=trigger, **details)
        if plan.outcome in ("blocked", "vetoed"):
            state = self.d.executor.save(state, blocked=Blocked(at=self.d.clock.now(), reason=plan.reason, trigger=trigger))
        if plan.outcome in _NOTIFIED:
            metric = _NOTIFIED[plan.outcome]
            if metric is not None:
                rec.metric(metric, cfg.name)
            would = {"would_promote": plan.chosen} if plan.outcome in ("blocked", "vetoed", "paused") else {}
            rec.notify(cfg, f"failover_{plan.outcome}", plan.reason, trigger=trigger, primary=state.primary, **would)
        return state

    def _clear_blocked(self, cfg: ClusterConfig, trigger: AlarmTrigger) -> None:
        """A failover alarm back to OK ends a blocked state: the primary answers again."""
        state = self.d.table.get_state(cfg.name)
        if state is None or state.blocked is None:
            return
        try:
            self.d.table.put_state(state.model_copy(update={"blocked": None}))
        except StateConflictError:
            logger.info("state changed while clearing the blocked state; leaving it to the run that changed it")
            return
        self.d.recorder.history(cfg.name, "blocked_cleared", f"{trigger.describe()}: the blocked failover is no longer needed")
