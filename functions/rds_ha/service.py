"""Application layer: wires snapshot -> planner -> executor under the cluster's lease.

Handlers and the CLI call these functions and nothing below them. Nothing here imports boto3.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import TAG_CLUSTER
from .adapters.aws import AwsClients, caller_account
from .adapters.cloudwatch import CloudWatchAdapter
from .adapters.hooks import Hooks
from .adapters.notify import Notifier
from .adapters.rds import RdsAdapter
from .adapters.route53 import Route53Adapter
from .adapters.state import StateTable
from .capacity import Capacity
from .core.actions import ChangeRecords, CreateReplica, Plan, StartWorkflow
from .core.clock import Clock, SystemClock
from .core.config import ClusterConfig, claim_conflicts, foreign_accounts, outside_zone
from .core.errors import AwsError, ClusterNotFoundError, ConfigError, HookError, LeaseBusyError, LeaseLostError, StateConflictError
from .core.models import AlarmStatus, ClusterState, Instance, LagReading, Marker, Record, Topology
from .core.planner import FailoverRequest, current_transition, decide_failover, decide_switchover, no_replicas_of, outline, plan_steady, plan_workflow
from .core.readiness import Readiness, assess
from .events import AlarmTrigger
from .executor import Executor
from .lease import Lease, Leases
from .observability import emit, logger
from .results import Result
from .snapshot import Snapshotter, Sweep, members

DEFAULT_TABLE = "rds-ha"
POLL_SECONDS = 10.0
LEASE_WAIT_SECONDS = 30.0
# Record sets per ListResourceRecordSets page when a reconcile lists a whole hosted zone.
ZONE_PAGE = 300


@dataclass(frozen=True)
class Settings:
    """What the environment configures. Read once, by handlers and the CLI, never by logic."""

    table: str = DEFAULT_TABLE
    topic_arn: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(table=os.environ.get("RDS_HA_TABLE") or DEFAULT_TABLE, topic_arn=os.environ.get("RDS_HA_TOPIC_ARN") or None)


def _candidates(cfg: ClusterConfig, plan: Plan) -> list[dict[str, Any]]:
    """The candidates' verdicts as results show them; where the SQL probe and CloudWatch disagree, a log line says so."""
    out = []
    for v in plan.candidates:
        if v.disagreement is not None:
            logger.warning(f"{v.instance}: {v.disagreement}; the probe's engine-side reading is used", extra={"cluster": cfg.name})
        out.append({"instance": v.instance, "eligible": v.eligible, "reason": v.reason, "lag": v.lag, "lag_bytes": v.lag_bytes, "az": v.az})
    return out


class Service:
    def __init__(self, clients: AwsClients, settings: Settings, clock: Clock | None = None) -> None:
        self.clients = clients
        self.settings = settings
        self.clock = clock or SystemClock()
        self.table = StateTable(clients, settings.table)
        self.rds = RdsAdapter(clients)
        self.route53 = Route53Adapter(clients)
        self.cloudwatch = CloudWatchAdapter(clients)
        self.snapshots = Snapshotter(self.rds, self.route53, self.cloudwatch, self.table, self.clock)
        self.hooks = Hooks(clients)
        self.executor = Executor(self.rds, self.route53, self.table, Notifier(clients), self.clock, settings.topic_arn, hooks=self.hooks)
        self.poll_seconds = POLL_SECONDS
        self.lease_wait_seconds = LEASE_WAIT_SECONDS
        self.leases = Leases(self.table, self.clock)
        clients.send_guard = self.leases.before_send
        self.executor.leases = self.leases
        self.executor.cloudwatch = self.cloudwatch
        self.capacity = Capacity(self)

    # -- lookups ------------------------------------------------------------------------------
    def clusters(self) -> list[ClusterConfig]:
        return self.table.configs()

    def cluster(self, name: str) -> ClusterConfig:
        for cfg in self.clusters():
            if cfg.name == name:
                return cfg
        raise ClusterNotFoundError(f"no cluster named {name!r} is configured in table {self.table.name} (rds-ha apply -f FILE)")

    def cluster_for_alarm(self, alarm_name: str) -> ClusterConfig | None:
        return next((c for c in self.clusters() if alarm_name in c.alarms.failover), None)

    # -- the lease ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, cluster: str, deadline: datetime, wait: float) -> Iterator[Lease]:
        """The cluster's lease for this block (rds_ha.lease: renewed as the run goes, checked before
        every attempt of a mutating AWS call); re-entrant within one thread."""
        with self.leases.hold(cluster, wait) as held:
            yield held

    def _lease_lost(self, cfg: ClusterConfig, trigger: str, exc: LeaseLostError) -> Result:
        """This run stalled past its lease: it stops, records why (best effort), and leaves the cluster
        to the run that holds it now (or to the next reconcile)."""
        logger.warning(str(exc), extra={"cluster": cfg.name})
        try:
            self.table.add_history(cfg.name, self.clock.now(), "lease_lost", str(exc), {"trigger": trigger})
        except AwsError:
            logger.error("could not record the lost lease in the state table either", extra={"cluster": cfg.name})
        return Result(cfg.name, "lease_lost", str(exc), error=str(exc))

    # -- failover -----------------------------------------------------------------------------
    def handle_alarm(self, trigger: AlarmTrigger, deadline: datetime, cfg: ClusterConfig | None = None) -> Result:
        """A parsed alarm transition: ignore it (saying why) or fail the cluster over."""
        cfg = cfg or self.cluster_for_alarm(trigger.alarm_name)
        if cfg is None:
            return self._ignored(None, f"alarm {trigger.alarm_name} is not mapped to any cluster's alarms.failover")
        if not trigger.is_alarm_transition:
            if trigger.state == "OK":
                self._clear_blocked(cfg, trigger)
            return self._ignored(cfg.name, f"{trigger.describe()}: not a transition into ALARM (from {trigger.previous_state})")
        return self.failover(cfg, self._request(trigger), deadline)

    @staticmethod
    def _request(trigger: AlarmTrigger) -> FailoverRequest:
        return FailoverRequest(
            trigger=trigger.describe(),
            failure_time=trigger.state_time,
            workflow_id=uuid.uuid4().hex[:6],
            automatic=True,
            alarm_name=trigger.alarm_name,
            alarm_instance=trigger.instance,
        )

    def failover(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, dry_run: bool = False) -> Result:
        if dry_run:  # reads and plans only: no lease, no writes
            return self._decide(cfg, request, deadline, dry_run=True)
        try:
            with self.lease(cfg.name, deadline, self.lease_wait_seconds):
                return self._decide(cfg, request, deadline)
        except LeaseLostError as exc:
            return self._lease_lost(cfg, request.trigger, exc)
        except AwsError as exc:
            return self._aws_failed(cfg, request.trigger, exc)

    def switchover(self, cfg: ClusterConfig, target: str | None, by: str, deadline: datetime, dry_run: bool = False) -> Result:
        """A planned change of primary while the old one is healthy: wait (up to switchover.catch_up_seconds)
        for the target to catch up, then run the failover workflow (promote, writer, fence, rebuild)."""
        request = FailoverRequest(
            trigger=f"switchover by {by}", failure_time=self.clock.now(), workflow_id=uuid.uuid4().hex[:6], automatic=False, target=target, planned=True
        )
        give_up = min(deadline, self.clock.now() + timedelta(seconds=cfg.switchover.catch_up_seconds))

        def decide() -> tuple[Topology, Result, Plan]:
            topo = self.snapshots.read(cfg)
            plan = decide_switchover(topo, request)
            result = Result(cfg.name, plan.outcome, plan.reason, [a.describe() for a in plan.actions], _candidates(cfg, plan), plan.chosen)
            start = next((a for a in plan.actions if isinstance(a, StartWorkflow)), None)
            if start is not None and start.workflow is not None:
                result.steps = outline(topo, start.workflow)
            return topo, result, plan

        if dry_run:
            return decide()[1]
        try:
            while True:
                # The catch-up wait holds no lease between looks: a failure of the primary meanwhile is
                # failed over at once (the next look finds that failover, or the primary down, and refuses).
                with self.lease(cfg.name, deadline, self.lease_wait_seconds):
                    topo, result, plan = decide()
                    if plan.outcome != "waiting" or self.clock.now() + timedelta(seconds=self.poll_seconds) > give_up:
                        return self._switch(cfg, request, deadline, topo, result, plan)
                self.clock.sleep(self.poll_seconds)
        except LeaseLostError as exc:
            return self._lease_lost(cfg, request.trigger, exc)
        except AwsError as exc:
            return self._aws_failed(cfg, request.trigger, exc)

    def _switch(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, topo: Topology, result: Result, plan: Plan) -> Result:
        """A switchover's decision, under the lease: refuse (recorded, notified), or ask the hook and run the workflow."""
        if plan.outcome != "start":
            if plan.outcome == "waiting":
                result.outcome = "refused"
                result.reason = f"{plan.reason}; gave up after {cfg.switchover.catch_up_seconds}s (switchover.catch_up_seconds)"
            self.executor.history(cfg.name, "switchover_refused", result.reason, trigger=request.trigger)
            self.executor.notify(topo, "switchover_refused", result.reason, unplanned=False, primary=topo.state.primary)
            return result
        veto = self._pre_hook(topo, plan, request.trigger, planned=True)
        if veto is not None:
            self.executor.history(cfg.name, "switchover_vetoed", veto, trigger=request.trigger)
            self.executor.notify(topo, "switchover_vetoed", veto, unplanned=False, primary=topo.state.primary)
            return Result(cfg.name, "vetoed", veto, candidates=result.candidates, chosen=result.chosen)
        state = self.executor.execute(topo, plan).state
        progress = self._drive(cfg, deadline, first=replace(topo, state=state))
        result.actions += progress.actions
        result.outcome, result.error = progress.outcome, progress.error
        if progress.outcome != "complete":
            result.reason += f"; {progress.reason}"
        return result

    def _pre_hook(self, topo: Topology, plan: Plan, trigger: str, planned: bool) -> str | None:
        """Ask the cluster's pre_failover hook; the veto's reason, or None to proceed. A hook that does
        not answer in time or fails decides by hooks.on_timeout; either way it is recorded."""
        hooks, cfg = topo.cluster.hooks, topo.cluster
        start = next((a for a in plan.actions if isinstance(a, StartWorkflow)), None)
        if hooks.pre_failover is None or start is None or start.workflow is None:
            return None
        wf = start.workflow
        payload = {
            "type": f"pre_{wf.kind}",
            "planned": planned,
            "cluster": cfg.name,
            "old_primary": wf.old_primary,
            "new_primary": wf.new_primary,
            "reason": plan.reason,
            "trigger": trigger,
            "candidates": {v.instance: v.reason for v in plan.candidates},
        }
        try:
            reply = self.hooks.ask(hooks.pre_failover, payload, hooks.timeout_seconds)
        except HookError as exc:
            if hooks.on_timeout == "veto":
                return f"vetoed: {exc} (hooks.on_timeout is veto)"
            self.executor.history(cfg.name, "hook_failed", f"{exc}; proceeding (hooks.on_timeout is proceed)", hook=hooks.pre_failover)
            return None
        if reply.get("veto") is True:
            why = str(reply.get("reason") or "no reason given")[:300]
            return f"vetoed by the pre_failover hook: {why}"
        return None

    def _aws_failed(self, cfg: ClusterConfig, trigger: str, exc: AwsError) -> Result:
        """AWS failed us past its retries. Record and notify (best effort) and return: the transition
        is not marked handled, so the next reconcile decides again from what AWS shows then."""
        reason = f"AWS error, will retry on the next reconcile: {exc}"
        logger.error(reason, extra={"cluster": cfg.name})
        try:
            self.table.add_history(cfg.name, self.clock.now(), "aws_error", reason, {"trigger": trigger, "code": exc.code})
        except AwsError:
            logger.error("could not record the AWS error in the state table either", extra={"cluster": cfg.name})
        topic = cfg.notifications.sns_topic_arn or self.executor.topic_arn
        if topic and self.executor.notifier is not None:
            try:
                self.executor.notifier.publish(topic, f"rds-ha {cfg.name}: aws_error", {"type": "aws_error", "cluster": cfg.name, "message": reason})
            except AwsError:
                logger.error("could not notify the AWS error either", extra={"cluster": cfg.name})
        return Result(cfg.name, "error", reason, error=str(exc))

    def _decide(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, dry_run: bool = False) -> Result:
        """Decide on a failover request and act on it. The caller holds the lease (unless dry run)."""
        alarms = self.cloudwatch.alarms(cfg.region, cfg.alarms.failover) if request.alarm_name is not None and cfg.alarms.failover else None
        # The lag window ends at the alarm's current transition, whatever time the delivery carried.
        request = current_transition(request, alarms or {})
        topo = self.snapshots.read(cfg, failure_time=request.failure_time, alarms=alarms)
        plan = decide_failover(topo, request)
        result = Result(
            cfg.name,
            plan.outcome,
            plan.reason,
            [a.describe() for a in plan.actions],
            _candidates(cfg, plan),
            plan.chosen,
        )
        start = next((a for a in plan.actions if isinstance(a, StartWorkflow)), None)
        if start is not None and start.workflow is not None:
            result.steps = outline(topo, start.workflow)
        if dry_run:
            return result
        if topo.state.workflow is not None and request.automatic:
            # Another delivery (or a crashed run) started this failover: help finish it.
            progress = self._drive(cfg, deadline)
            progress.reason = f"{plan.reason}; resumed: {progress.reason}"
            return progress
        if plan.outcome == "duplicate":
            logger.info(plan.reason, extra={"cluster": cfg.name})
            return result
        veto = self._pre_hook(topo, plan, request.trigger, planned=False) if plan.outcome == "start" else None
        if veto is not None:
            plan = Plan("vetoed", veto, candidates=plan.candidates, chosen=plan.chosen)
            result.outcome, result.reason, result.actions, result.steps = "vetoed", veto, [], []
        if plan.outcome == "start":
            state = self.executor.execute(topo, plan).state
        else:
            state = self.executor.record_decision(topo, plan, request.trigger)
        if request.alarm_name is not None and plan.outcome != "deferred":
            # Whatever was decided, this transition is now handled: no other delivery or path takes it again.
            # A deferred one is not: reconcile finds the alarm still in ALARM and decides again.
            state = self.executor.mark_handled(state, request.alarm_name, request.failure_time, plan.outcome)
        if plan.outcome != "start":
            return result
        # The decision's snapshot is milliseconds old: start the workflow from it, not a new read.
        progress = self._drive(cfg, deadline, first=replace(topo, state=state))
        result.actions += progress.actions
        result.outcome, result.error = progress.outcome, progress.error
        if progress.outcome != "complete":
            result.reason += f"; {progress.reason}"
        return result

    def _clear_blocked(self, cfg: ClusterConfig, trigger: AlarmTrigger) -> None:
        """A failover alarm back to OK ends a blocked state: the primary answers again."""
        state = self.table.get_state(cfg.name)
        if state is None or state.blocked is None:
            return
        try:
            self.table.put_state(state.model_copy(update={"blocked": None}))
        except StateConflictError:
            logger.info("state changed while clearing the blocked state; leaving it to the run that changed it")
            return
        self.table.add_history(cfg.name, self.clock.now(), "blocked_cleared", f"{trigger.describe()}: the blocked failover is no longer needed", {})

    def _drive(
        self,
        cfg: ClusterConfig,
        deadline: datetime,
        sweep: Sweep | None = None,
        first: Topology | None = None,
        recent_lag: dict[str, LagReading] | None = None,
        dns_only: bool = False,
        records: dict[str, tuple[Record, ...]] | None = None,
        on_first: Callable[[Topology], None] | None = None,
    ) -> Result:
        """Run the workflow's steps until it completes, must wait past the deadline, or fails a step.

        `sweep` (instances) or `first` (a whole topology) spare the first read when the caller has
        just made it; after any change the topology is read again.
        """
        done: list[str] = []
        last: tuple[str, ...] = ()
        seen: set[str] = set()
        while True:
            self.leases.ensure(cfg.name)  # a run waiting on AWS keeps its lease; one that lost it stops here
            topo = first or self.snapshots.read(cfg, described=sweep, recent_lag=recent_lag, check_writer=not dns_only, records=records, hint=seen)
            sweep, first, recent_lag, records = None, None, None, None
            if on_first is not None:  # the run's first look, before it changes anything
                on_first(topo)
                on_first = None
            seen = set(topo.instances)
            wf_now = topo.state.workflow
            if topo.state.paused is not None and (wf_now is None or not wf_now.manual):  # decide, say what would be done, change nothing
                plan = plan_steady(topo) if topo.state.workflow is None else plan_workflow(topo)
                would = [f"would {a.describe()}" for a in plan.mutating]
                return Result(cfg.name, "paused", f"paused by {topo.state.paused.by}; {plan.reason}", done + would)
            if topo.state.workflow is None:
                plan = plan_steady(topo)
                if dns_only:  # an RDS event's sync: records only; replicas and Multi-AZ are reconcile's
                    plan = replace(plan, actions=tuple(a for a in plan.actions if isinstance(a, ChangeRecords)))
                out = self.executor.execute(topo, plan)
                return Result(cfg.name, "steady", plan.reason, done + out.done, error=out.error)
            if dns_only:
                wf = topo.state.workflow
                return Result(cfg.name, "waiting", f"failover {wf.old_primary} -> {wf.new_primary} in progress; its own run and reconcile drive it", done)
            plan = plan_workflow(topo)
            out = self.executor.execute(topo, plan)
            done += out.done
            seen |= {a.instance for a in plan.actions if isinstance(a, CreateReplica)}  # described with the rest next time
            if out.error:
                return Result(cfg.name, "retrying", f"a step failed and will be retried: {out.error}", done, error=out.error)
            if plan.outcome in {"complete", "blocked"}:
                return Result(cfg.name, plan.outcome, plan.reason, done)
            attempted = tuple(a.describe() for a in plan.mutating)
            if attempted:
                if attempted == last:  # the same actions twice: AWS did not take them; stop, don't spin
                    return Result(cfg.name, "waiting", f"no progress after {', '.join(attempted)}", done)
                last = attempted
                continue
            if self.clock.now() + timedelta(seconds=self.poll_seconds) > deadline:
                return Result(cfg.name, "waiting", f"{plan.reason} (reconcile continues)", done)
            self.clock.sleep(self.poll_seconds)

    # -- reconcile ----------------------------------------------------------------------------
    def reconcile(self, names: list[str] | None, deadline: datetime) -> list[Result]:
        """Resume unfinished failovers and repair drifted DNS, cluster by cluster."""
        configs = self.clusters()
        if names:
            known = {c.name for c in configs}
            for name in names:
                if name not in known:
                    raise ClusterNotFoundError(f"no cluster named {name!r} is configured in table {self.table.name}")
            configs = [c for c in configs if c.name in names]
        # One DescribeDBInstances sweep per region serves every cluster's first look. A region whose API
        # fails stops no other: its clusters read what they can themselves (the snapshot contains it).
        sweeps: dict[str, list[Instance]] = {}
        for region in sorted({r for c in configs for r in c.regions}):
            try:
                sweeps[region] = self.rds.describe_all(region)
            except AwsError as exc:
                logger.error(f"reconcile: DBInstances of {region} not read: {exc}")
        lags = self._recent_lags(configs, sweeps)
        statuses, alarms_read = self._mapped_alarms(configs)
        alarms = {n: a for n, a in statuses.items() if a.state == "ALARM"}
        records = self._zone_records(configs)
        results = []
        for cfg in configs:
            try:
                with self.lease(cfg.name, deadline, 0):
                    missed = self._missed_trigger(cfg, alarms)
                    decided = self._decide(cfg, self._request(missed), deadline) if missed is not None else None
                    if decided is not None and decided.outcome not in {"ignored", "duplicate", "refused"}:
                        results.append(decided)
                        continue
                    # Nothing (more) to decide: keep DNS, replicas and Multi-AZ as they should be.
                    swept = Sweep([i for r in cfg.regions for i in sweeps[r]]) if all(r in sweeps for r in cfg.regions) else None
                    judged: list[Readiness] = []
                    failover_alarms = {n: statuses[n] for n in cfg.alarms.failover if n in statuses} if cfg.region in alarms_read else None

                    def ready(topo: Topology, seen: Mapping[str, AlarmStatus] | None = failover_alarms, judged: list[Readiness] = judged) -> None:
                        judged.append(self._publish_readiness(assess(topo, seen)))

                    steady = self._drive(cfg, deadline, swept, recent_lag=lags.get(cfg.name), records=records.get(cfg.dns.zone_id), on_first=ready)
                    if judged:
                        steady.readiness = judged[0].as_dict(candidates=False)
                    if decided is not None:
                        steady.reason = f"{decided.reason}; {steady.reason}"
                    if steady.outcome == "steady":
                        more = self.capacity.alarms_still_firing(cfg, alarms, deadline)
                        if more is not None:
                            steady.reason += f"; {more.reason}"
                            steady.actions += more.actions
                    results.append(steady)
            except LeaseBusyError as exc:
                results.append(Result(cfg.name, "skipped", str(exc)))
            except LeaseLostError as exc:
                results.append(self._lease_lost(cfg, "reconcile", exc))
            except AwsError as exc:  # one cluster's trouble must not stop the others' reconcile
                results.append(self._aws_failed(cfg, "reconcile", exc))
        return results

    def _recent_lags(self, configs: list[ClusterConfig], sweeps: dict[str, list[Instance]]) -> dict[str, dict[str, LagReading]]:
        """Latest ReplicaLag of every cluster's replicas: one batched GetMetricData per region per sweep,
        not one per cluster."""
        replicas: dict[str, list[Instance]] = {}
        for cfg in configs:
            # Members by tag and by the config's primary (no state read): what the snapshot finds misses nothing
            # important, as a replica without a reading is judged on its status and its place in the reader set.
            by_tag = members(cfg, ClusterState(cluster=cfg.name, primary=cfg.primary), [i for r in cfg.regions for i in sweeps.get(r, [])])
            replicas[cfg.name] = [i for i in by_tag.values() if i.is_replica]
        by_name = {cfg.name: cfg for cfg in configs}
        every = [i for found in replicas.values() for i in found]
        readings, failed = self.snapshots.recent_lag_by_region(every, {i.id: by_name[name] for name, found in replicas.items() for i in found})
        # A cluster with a replica in a region whose metrics could not be read reads them itself (and
        # reports that region's trouble as its own), rather than deciding as if those replicas had no data.
        return {
            name: {i.id: readings[i.id] for i in found if i.id in readings} for name, found in replicas.items() if not any(i.region in failed for i in found)
        }

    def _zone_records(self, configs: list[ClusterConfig]) -> dict[str, dict[str, tuple[Record, ...]]]:
        """Writer and reader record sets of every cluster, one listing per hosted zone where that is
        cheaper than reading them name by name (Route 53 throttles per account: 5 requests/s). A zone's
        size (GetHostedZone) says what its listing costs, so a large zone shared by few clusters is
        still read by name, and nothing costs more than before."""
        by_zone: dict[str, set[str]] = defaultdict(set)
        for cfg in configs:
            by_zone[cfg.dns.zone_id] |= {cfg.dns.writer, *([cfg.dns.reader] if cfg.dns.reader else [])}
        out: dict[str, dict[str, tuple[Record, ...]]] = {}
        for zone, names in by_zone.items():
            if len(names) < 3:  # one GetHostedZone and a page already cost as much as two reads by name
                continue
            try:
                pages = -(-self.route53.zone_size(zone) // ZONE_PAGE)
                if pages + 1 < len(names):
                    listed = self.route53.zone_cnames(zone, names, max_pages=pages + 1)
                    if listed is not None:
                        out[zone] = listed
            except AwsError as exc:  # the clusters read their records by name, as without a listing
                logger.warning(f"zone {zone} not listed: {exc}")
        return out

    def _mapped_alarms(self, configs: list[ClusterConfig]) -> tuple[dict[str, AlarmStatus], set[str]]:
        """Every mapped alarm as it is now (one DescribeAlarms per region and per 100 alarms), and the
        regions whose alarms were read."""
        out: dict[str, AlarmStatus] = {}
        read: set[str] = set()
        for region in sorted({c.region for c in configs}):
            names = [a for c in configs if c.region == region for a, _ in c.alarms.roles()]
            if not names:
                read.add(region)
                continue
            try:
                out.update(self.cloudwatch.alarms(region, names))
                read.add(region)
            except AwsError as exc:  # those clusters' alarms are looked at again next minute; the rest go on
                logger.error(f"reconcile: alarms of {region} not read: {exc}")
        return out, read

    def _publish_readiness(self, readiness: Readiness) -> Readiness:
        """FailoverReady (0/1) and EligibleCandidates of the cluster (EMF, no API call); the reasons in the log."""
        emit("FailoverReady", readiness.cluster, 1 if readiness.ready else 0)
        emit("EligibleCandidates", readiness.cluster, readiness.eligible)
        if not readiness.ready:
            logger.info(f"{readiness.cluster}: {readiness.sentence}", extra={"cluster": readiness.cluster, "kind": "not_ready"})
        return readiness

    def check(self, cfg: ClusterConfig) -> Readiness:
        """`rds-ha check`: the readiness judgement from a fresh look, the hooks' existence included."""
        topo = self._with_recent_lag(cfg, self.snapshots.read(cfg, failure_time=self.clock.now()))
        hooks = {cfg.hooks.pre_failover: self.hooks.exists(cfg.hooks.pre_failover)} if cfg.hooks.pre_failover else None
        return assess(topo, self._failover_alarms(cfg, topo), hooks)

    def _status_readiness(self, cfg: ClusterConfig, topo: Topology) -> dict[str, Any]:
        try:
            alarms: Mapping[str, AlarmStatus] | None = self._failover_alarms(cfg, topo)
        except AwsError as exc:  # status still shows the rest
            logger.warning(f"status: alarms of {cfg.name} not read: {exc}")
            alarms = None
        return assess(topo, alarms).as_dict(candidates=False)

    def _failover_alarms(self, cfg: ClusterConfig, topo: Topology) -> dict[str, AlarmStatus]:
        """The cluster's failover alarms as CloudWatch shows them, in the primary's region."""
        region = topo.primary.region if topo.primary is not None else cfg.region
        return self.cloudwatch.alarms(region, cfg.alarms.failover) if cfg.alarms.failover else {}

    def _with_recent_lag(self, cfg: ClusterConfig, topo: Topology) -> Topology:
        of_cluster = [i for i in topo.instances.values() if i.is_replica]
        return replace(topo, recent_lag=self.snapshots.recent_lag(of_cluster, {i.id: cfg for i in of_cluster}))

    def _missed_trigger(self, cfg: ClusterConfig, alarms: dict[str, AlarmStatus]) -> AlarmTrigger | None:
        """An alarm in ALARM whose transition no decision has handled: its delivery was lost or late.

        EventBridge, SNS and Lambda deliver at least once but not always: an exhausted retry or a
        throttled function must not leave a dead primary alone.
        """
        if not any(name in alarms for name in cfg.alarms.failover):
            return None  # the common case: no state read for a healthy cluster
        state = self.table.get_state(cfg.name)
        if state is None or state.workflow is not None:
            return None
        for name in cfg.alarms.failover:
            alarm = alarms.get(name)
            if alarm is None or alarm.updated_at is None:
                continue
            if state.last_trigger is not None and state.last_trigger.same(name, alarm.updated_at):
                continue
            if state.last_failover_at is not None and alarm.updated_at <= state.last_failover_at:
                continue  # older than the last failover: that one already answered it
            return AlarmTrigger(
                alarm_name=name,
                state="ALARM",
                previous_state=None,
                state_time=alarm.updated_at,
                reason="found in ALARM by reconcile",
                dimensions=dict(alarm.dimensions),
                shape="reconcile",
            )
        return None

    def _ignored(self, cluster: str | None, reason: str) -> Result:
        logger.info(f"ignored: {reason}")
        return Result(cluster, "ignored", reason)

    # -- operator controls --------------------------------------------------------------------
    def _update_state(self, cfg: ClusterConfig, kind: str, message: str, **update: Any) -> ClusterState:
        """Change operator fields of the state (optimistic lock, retried) and record who and why."""
        for _ in range(5):
            state = self.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)
            try:
                new = self.table.put_state(state.model_copy(update=update))
            except StateConflictError:
                continue
            self.table.add_history(cfg.name, self.clock.now(), kind, message, {})
            return new
        raise StateConflictError(f"state of {cfg.name} kept changing; try again")

    def pause(self, cfg: ClusterConfig, by: str, reason: str) -> ClusterState:
        marker = Marker(by=by, at=self.clock.now(), reason=reason)
        return self._update_state(cfg, "paused", f"paused by {by}" + (f": {reason}" if reason else ""), paused=marker)

    def resume(self, cfg: ClusterConfig, by: str) -> ClusterState:
        # Forget the last handled alarm: one still in ALARM is decided again by the next reconcile.
        return self._update_state(cfg, "resumed", f"resumed by {by}", paused=None, last_trigger=None)

    def ack(self, cfg: ClusterConfig, by: str) -> ClusterState:
        return self._update_state(cfg, "acknowledged", f"cooldown acknowledged by {by}", acknowledged=Marker(by=by, at=self.clock.now()))

    # -- configuration ------------------------------------------------------------------------
    def apply(self, clusters: list[ClusterConfig], source: str, applied_by: str, tag_members: bool = False) -> list[str]:
        """Check each cluster against AWS, then store them all; nothing is stored if any is wrong.

        rds-ha's IAM policy lets it act only on instances tagged `rds-ha:cluster`: the primary and
        its replicas must carry the tag (`tag_members` adds it where it is missing).
        """
        untagged: list[tuple[ClusterConfig, Instance]] = []
        described: dict[str, list[Instance]] = {}
        states = {cfg.name: self.table.get_state(cfg.name) for cfg in clusters}
        applied = {c.name: c for c in self.clusters()}
        problems = claim_conflicts(clusters, applied.values())
        # (region, instance) -> the file's cluster it belongs to. A cluster applied before has tagged its
        # members (below), so the tag check catches an instance it already owns.
        member_of: dict[tuple[str, str], str] = {}
        warnings: list[str] = []
        account = caller_account(self.clients)
        for cfg in clusters:
            problems += foreign_accounts(cfg, account)
            state = states[cfg.name]
            primary_id = state.primary if state else cfg.primary
            if cfg.region not in described:  # one sweep per region (setdefault would describe once per cluster)
                described[cfg.region] = self.rds.describe_all(cfg.region)
            instances = described[cfg.region]
            primary = next((i for i in instances if i.id == primary_id), None)
            if primary is None:
                problems.append(f"cluster {cfg.name}: primary {primary_id} not found in {cfg.region}")
            elif primary.is_replica:
                problems.append(f"cluster {cfg.name}: primary {primary_id} is a read replica of {primary.source}")
            else:
                refused = no_replicas_of(primary)
                if refused:
                    warnings.append(f"cluster {cfg.name}: warning: {refused}; a failover still promotes a replica, but no replica can be rebuilt or added")
                if primary.subnet_group:
                    problems += [
                        f"cluster {cfg.name}: {primary.id} is in a VPC (subnet group {primary.subnet_group}): replicas.cross_region[{i}] ({c.region}) "
                        f"needs subnet_group, a DB subnet group of {c.region} (without one RDS puts the replica in no VPC)"
                        for i, c in enumerate(cfg.replicas.cross_region)
                        if not c.subnet_group
                    ]
                for inst in [primary, *(i for i in instances if i.source == primary.id)]:
                    other = member_of.setdefault((cfg.region, inst.id), cfg.name)
                    if other != cfg.name:
                        problems.append(f"cluster {cfg.name}: {inst.id} is already a member of cluster {other}")
                    if inst.cluster_tag is None:
                        untagged.append((cfg, inst))
                    elif inst.cluster_tag != cfg.name:
                        problems.append(f"cluster {cfg.name}: {inst.id} is tagged {TAG_CLUSTER}={inst.cluster_tag}, a member of another cluster")
            zone = self.route53.zone_name(cfg.dns.zone_id)
            if zone is None:
                problems.append(f"cluster {cfg.name}: hosted zone {cfg.dns.zone_id} not found")
            else:
                problems += outside_zone(cfg, zone)
        if untagged and not tag_members:
            names = ", ".join(i.id for _, i in untagged)
            problems.append(f"{names} lack the tag {TAG_CLUSTER} (rds-ha may act only on tagged instances); add it, or apply with --tag-members")
        if problems:
            raise ConfigError(problems, source)
        notes = warnings
        for cfg, inst in untagged:
            self.rds.add_tags(cfg.region, inst.arn, {TAG_CLUSTER: cfg.name})
            notes.append(f"tagged {inst.id} {TAG_CLUSTER}={cfg.name}")
        now = self.clock.now()
        for cfg in clusters:
            state = states[cfg.name]
            if state is None:
                self.table.put_state(ClusterState(cluster=cfg.name, primary=cfg.primary))
            elif state.primary != cfg.primary:
                notes.append(
                    f"{cfg.name}: the file names {cfg.primary} as primary, but rds-ha made {state.primary} the primary; "
                    f"keeping {state.primary} (update the file)"
                )
            before = applied.get(cfg.name)
            if state is not None and state.multi_az is not None:
                if before is not None and before.multi_az != cfg.multi_az:
                    # The file's multi_az changed: it is the newest word, and replaces the alarm's or operator's choice.
                    self.table.put_state(state.model_copy(update={"multi_az": None}))
                    notes.append(f"{cfg.name}: multi_az is now the file's ({cfg.multi_az}); the choice made by {state.multi_az.by} is dropped")
                else:
                    how = "on" if state.multi_az.enabled else "off"
                    notes.append(f"{cfg.name}: Multi-AZ stays {how} as chosen by {state.multi_az.by} until the file changes multi_az")
            self.table.put_config(cfg, applied_by, now)
            self.table.add_history(cfg.name, now, "config_applied", f"configuration applied from {source} by {applied_by}", {})
        return notes

    # -- status -------------------------------------------------------------------------------
    def status_region(self, cfg: ClusterConfig) -> str:
        """Where the cluster's primary lives now (a cross-region failover may have moved it)."""
        state = self.table.get_state(cfg.name)
        return (state.primary_region if state else None) or cfg.region

    def status(self, cfg: ClusterConfig) -> dict[str, Any]:
        topo = self._with_recent_lag(cfg, self.snapshots.read(cfg, failure_time=self.clock.now()))
        state = topo.state
        wf = state.workflow
        orphans = set(wf.orphans) if wf else set()
        primary_id = state.primary
        replicas = []
        for inst in topo.instances.values():
            if inst.id == primary_id:
                continue
            role = "replica" if inst.source == primary_id else "orphan" if inst.id in orphans else "fenced" if inst.fenced else "member"
            if wf and inst.id == wf.new_primary and inst.id != primary_id:
                role = "promoting"
            replicas.append(
                {
                    "id": inst.id,
                    "role": role,
                    "status": inst.status,
                    "az": inst.az,
                    "source": inst.source,
                    "lag": topo.lag.get(inst.id),
                    "fenced": inst.fenced,
                    "never_promote": inst.never_promote,
                }
            )
        primary = topo.primary
        cooldown_until = None
        if state.last_failover_at is not None:
            until = state.last_failover_at + timedelta(seconds=cfg.failover.cooldown_seconds)
            cooldown_until = until.isoformat() if until > topo.now else None
        return {
            "cluster": cfg.name,
            "region": cfg.region,
            "primary": primary_id,
            "primary_status": primary.status if primary else "not found",
            "primary_az": primary.az if primary else None,
            "replicas": replicas,
            "writer": {"name": cfg.dns.writer, "targets": [r.value for r in topo.writer]},
            "reader": {"name": cfg.dns.reader, "targets": [r.value for r in topo.reader]} if cfg.dns.reader else None,
            "workflow": wf.model_dump(mode="json") if wf else None,
            "blocked": state.blocked.model_dump(mode="json") if state.blocked else None,
            "last_failover_at": state.last_failover_at.isoformat() if state.last_failover_at else None,
            "cooldown_until": cooldown_until,
            "paused": state.paused.model_dump(mode="json") if state.paused else None,
            "acknowledged": state.acknowledged.model_dump(mode="json") if state.acknowledged else None,
            "fenced": list(state.fenced),
            "readiness": self._status_readiness(cfg, topo),
            **self.capacity.status(topo),
        }
