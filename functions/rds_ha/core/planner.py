"""The planner: pure functions from a Topology to a Plan of actions, each with its reason.

Nothing here performs I/O. `decide_failover` answers "should we fail over, and to whom?";
`plan_workflow` answers "what is left of the failover in progress?" by comparing the workflow's
goal with the instances and records as AWS shows them, so it is safe to call after a crash at
any point: a step already done is simply not planned again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .. import TAG_CLUSTER, TAG_CREATED_BY, TAG_FENCED, TAG_ROLE
from .actions import (
    AbortWorkflow,
    Action,
    CandidateVerdict,
    ChangeRecords,
    CompleteWorkflow,
    CreateReplica,
    DeleteInstance,
    Fence,
    ModifyMultiAz,
    Plan,
    Promote,
    ReaderVerdict,
    RecordChange,
    RecordPrimary,
    RetargetAlarms,
    Scaling,
    StartWorkflow,
    StopInstance,
    VerifyWriter,
    Wait,
)
from .models import AVAILABLE, TERMINAL_STATUSES, AlarmStatus, Instance, LagReading, Record, Topology, Workflow, same_instant

# Statuses of a promoted instance in which it accepts writes.
WRITABLE = frozenset({"available", "backing-up", "configuring-enhanced-monitoring", "configuring-log-exports"})


@dataclass(frozen=True)
class FailoverRequest:
    """What asked for a failover: an alarm transition or an operator."""

    trigger: str  # human description, e.g. "alarm orders-primary-down (eventbridge)"
    failure_time: datetime
    workflow_id: str
    automatic: bool = True
    alarm_name: str | None = None
    # The DBInstanceIdentifier the alarm watches, when its metric has that dimension.
    alarm_instance: str | None = None
    target: str | None = None
    force: bool = False
    # A switchover: lag is the latest reading, not a window before a failure.
    planned: bool = False
    # A game day (`rds-ha drill`): fail over a healthy primary on purpose; the lag guard still holds.
    drill: bool = False


def current_transition(request: FailoverRequest, alarms: Mapping[str, AlarmStatus]) -> FailoverRequest:
    """The request about the alarm's current transition into ALARM, as DescribeAlarms shows it.

    A delivery names an alarm, but the time it carries is the sender's word: asynchronous retries
    arrive up to 6 h late, a failure-queue redrive replays old events, and anyone who may publish to
    the alarm's topic picks the time. The lag window and the handled-transition record are about the
    failure the alarm reports now."""
    alarm = alarms.get(request.alarm_name) if request.alarm_name is not None else None
    if alarm is None or alarm.state != "ALARM" or alarm.updated_at is None:
        return request
    if same_instant(alarm.updated_at, request.failure_time):
        return request
    said, at = request.failure_time.isoformat(timespec="milliseconds"), alarm.updated_at.isoformat(timespec="milliseconds")
    return replace(request, failure_time=alarm.updated_at, trigger=f"{request.trigger}: its current transition, at {at} (the event said {said})")


def _fmt(seconds: float) -> str:
    return f"{seconds:g}s"


# The SQL probe and CloudWatch disagree when their lags differ by more than this (and cross the limit).
DISAGREE_SECONDS = 5.0


def _lag_evidence(topo: Topology, replica: Instance) -> tuple[float | None, str, str | None]:
    """The lag a candidate is judged by, where it came from when not CloudWatch, and a disagreement worth logging.
    The probe's engine-side reading wins when recent: CloudWatch's ReplicaLag is -1 or NULL when
    replication is broken, and reads minutes on an idle PostgreSQL source."""
    cw = topo.lag.get(replica.id)
    engine = topo.engine_reading(replica.id)
    if engine is None or engine.lag_seconds is None:
        return cw, "", None
    probe = engine.lag_seconds
    disagree = None
    if cw is not None and (cw < 0 or abs(cw - probe) > DISAGREE_SECONDS):
        cw_text = "-1 (replication not active)" if cw < 0 else _fmt(cw)
        disagree = f"CloudWatch ReplicaLag {cw_text} disagrees with the SQL probe's {_fmt(probe)}"
    behind = f", {engine.lag_bytes:g} bytes behind" if engine.lag_bytes is not None else ""
    return probe, f" (SQL probe{behind})", disagree


def evaluate_candidates(topo: Topology, request: FailoverRequest) -> list[CandidateVerdict]:
    """A verdict for every replica of the primary: eligible, or the reason it is not."""
    cfg = topo.cluster.failover
    home = topo.primary.region if topo.primary is not None else topo.cluster.region
    verdicts = []
    for replica in topo.replicas_of(topo.state.primary):
        lag, source, disagree = _lag_evidence(topo, replica)
        engine = topo.engine_reading(replica.id)
        reason = None
        if request.target and replica.id != request.target:
            reason = f"not the requested target {request.target}"
        elif replica.fenced:
            reason = "fenced"
        elif replica.cluster_tag != topo.cluster.name:
            # rds-ha's IAM policy lets it promote only instances tagged as the cluster's: the call would be refused.
            reason = f"not tagged {TAG_CLUSTER}={topo.cluster.name} (rds-ha may act only on tagged instances; rds-ha apply --tag-members)"
        elif replica.never_promote:
            reason = "tagged rds-ha:never-promote"
        elif replica.status != AVAILABLE:
            reason = f"status {replica.status}"
        elif replica.region != home and not cfg.allow_cross_region:
            reason = f"in {replica.region}, another region (failover.allow_cross_region is off)"
        elif engine is not None and engine.broken:
            # Never a candidate, forced or not: promoting it would lose everything since it broke.
            reason = f"replication broken (SQL probe at {engine.at.isoformat(timespec='seconds')})"
        elif lag is None and not request.force:
            reason = "no recent ReplicaLag data" if request.planned else f"no ReplicaLag data in the {cfg.lag_window_seconds}s before the failure"
        elif lag is not None and lag < 0 and not request.force:
            reason = "replication not active (ReplicaLag -1)"
        elif lag is not None and lag > cfg.max_lag_seconds and not request.force:
            reason = f"lag {_fmt(lag)}{source} > max {_fmt(cfg.max_lag_seconds)}"
        eligible = reason is None
        if reason is None:
            reason = f"lag {_fmt(lag)}{source} <= max {_fmt(cfg.max_lag_seconds)}" if lag is not None else "forced: lag unknown"
        if disagree is not None:
            reason += f"; {disagree}"
        verdicts.append(
            CandidateVerdict(
                instance=replica.id,
                eligible=eligible,
                reason=reason,
                lag=lag,
                az=replica.az,
                lag_bytes=engine.lag_bytes if engine is not None else None,
                disagreement=disagree,
            )
        )
    return verdicts


def _preference(topo: Topology, verdict: CandidateVerdict) -> tuple[bool, float, float, int, str]:
    """Sort key of eligible candidates: the primary's region first (a remote writer costs every
    client a round trip), then the most data (fewest bytes behind, by the SQL probe; unknown last),
    then least lag, then the configured preference."""
    prefer = topo.cluster.failover.prefer
    inst = topo.instances[verdict.instance]
    remote = topo.primary is not None and inst.region != topo.primary.region
    rank = len(prefer)
    for index, place in enumerate(prefer):
        if place in (inst.az, inst.region):
            rank = index
            break
    lag = verdict.lag if verdict.lag is not None and verdict.lag >= 0 else math.inf
    behind = verdict.lag_bytes if verdict.lag_bytes is not None else math.inf
    return (remote, behind, lag, rank, verdict.instance)


def _ranked(topo: Topology, request: FailoverRequest) -> tuple[list[CandidateVerdict], list[CandidateVerdict]]:
    """Every replica's verdict, and the eligible ones best first."""
    verdicts = evaluate_candidates(topo, request)
    return verdicts, sorted((v for v in verdicts if v.eligible), key=lambda v: _preference(topo, v))


def _judged_now(topo: Topology) -> Topology:
    """The topology with each replica's latest ReplicaLag as its lag (a planned decision, not a failure window)."""
    return replace(topo, lag={iid: reading.seconds for iid, reading in (topo.recent_lag or {}).items()})


def _not_a_replica(topo: Topology, target: str | None) -> Plan | None:
    """A refusal when the requested target is not a replica of the primary."""
    primary = topo.state.primary
    found = topo.instances.get(target) if target else None
    if target and (found is None or found.source != primary):
        return Plan("refused", f"{target} is not a replica of the primary {primary}")
    return None


def _none_qualify(verdicts: list[CandidateVerdict], primary: str) -> str:
    return "; ".join(f"{v.instance}: {v.reason}" for v in verdicts) or f"{primary} has no replicas"


def decide_failover(topo: Topology, request: FailoverRequest) -> Plan:
    """Decide whether to start a failover and which replica to promote; while the cluster is
    paused, an automatic decision to start becomes a record of what would have been done."""
    plan = _decide_failover(topo, request)
    paused = topo.state.paused
    if paused is None or not request.automatic or plan.outcome != "start":
        return plan
    why = f": {paused.reason}" if paused.reason else ""
    return Plan("paused", f"paused by {paused.by}{why}; would {plan.reason}", candidates=plan.candidates, chosen=plan.chosen)


def _decide_failover(topo: Topology, request: FailoverRequest) -> Plan:
    state, cfg = topo.state, topo.cluster.failover
    if state.workflow is not None:
        wf = state.workflow
        return Plan(
            "ignored" if request.automatic else "refused",
            f"{wf.kind} {wf.old_primary} -> {wf.new_primary} already in progress (step: {wf.step})",
        )
    if request.alarm_name is not None:
        handled = state.last_trigger
        if handled is not None and handled.same(request.alarm_name, request.failure_time):
            return Plan("duplicate", f"this transition of {request.alarm_name} was handled already ({handled.outcome})")
        alarm = topo.alarms.get(request.alarm_name)
        if alarm is None or alarm.state != "ALARM":
            now_is = "no longer exists" if alarm is None else f"is {alarm.state} now"
            return Plan("ignored", f"alarm {request.alarm_name} {now_is}; nothing to do")
    if request.alarm_instance is not None and request.alarm_instance != state.primary:
        return Plan(
            "ignored",
            f"alarm {request.alarm_name} watches {request.alarm_instance}, which is not the primary ({state.primary})",
        )
    acked = state.acknowledged is not None and state.last_failover_at is not None and state.acknowledged.at >= state.last_failover_at
    if not request.force and not acked and state.last_failover_at is not None:
        elapsed = (topo.now - state.last_failover_at).total_seconds()
        if elapsed < cfg.cooldown_seconds:
            return Plan(
                "refused",
                f"cooldown: last failover {int(elapsed)}s ago, within cooldown_seconds {cfg.cooldown_seconds}; "
                "a human must look (rds-ha ack lifts it; rds-ha failover --force overrides)",
            )
    primary = topo.primary
    if primary is not None and primary.is_replica:
        return Plan("refused", f"{primary.id} is itself a replica of {primary.source}; the config's primary is wrong")
    if request.automatic and not request.force and primary is not None and primary.multi_az and cfg.multi_az_grace_seconds:
        until = request.failure_time + timedelta(seconds=cfg.multi_az_grace_seconds)
        if topo.now < until:
            return Plan(
                "deferred",
                f"{primary.id} is Multi-AZ: RDS fails over to its standby by itself; no replica is promoted before "
                f"{until.isoformat(timespec='seconds')} (multi_az_grace_seconds {cfg.multi_az_grace_seconds}), and reconcile decides again then",
            )
    if not request.automatic and not request.force and not request.drill and primary is not None and primary.status == AVAILABLE:
        return Plan(
            "refused",
            f"primary {primary.id} is available: failing over a healthy primary risks two writers; use --force if it is really down",
        )
    refusal = _not_a_replica(topo, request.target)
    if refusal is not None:
        return refusal

    verdicts, eligible = _ranked(topo, request)
    if not eligible:
        return Plan("blocked", f"no replica qualifies for promotion ({_none_qualify(verdicts, state.primary)})", candidates=tuple(verdicts))

    chosen = eligible[0]
    others = [v for v in verdicts if v.instance != chosen.instance]
    wf = Workflow(
        id=request.workflow_id,
        trigger=request.trigger,
        forced=request.force,
        manual=not request.automatic,
        started_at=topo.now,
        failure_time=request.failure_time,
        old_primary=state.primary,
        new_primary=chosen.instance,
        orphans=_members(topo, (v.instance for v in others)),
        step="promote",
    )
    lag_text = f"lag {_fmt(chosen.lag)}" if chosen.lag is not None else "lag unknown, forced"
    why = (
        "requested target"
        if request.target
        else "most data among eligible replicas (SQL probe)"
        if chosen.lag_bytes is not None
        else "least lag among eligible replicas"
    )
    # Say why each other replica lost: ineligible ones keep their reason, eligible ones lost the tie-break.
    explained = tuple(
        v if v.instance == chosen.instance or not v.eligible else replace(v, reason=f"{v.reason}, but {chosen.instance} is preferred") for v in verdicts
    )
    return Plan(
        "start",
        f"promote {chosen.instance} ({lag_text}; {why})",
        actions=(StartWorkflow(reason=request.trigger, workflow=wf),),
        candidates=explained,
        chosen=chosen.instance,
    )


def _members(topo: Topology, ids: Iterable[str]) -> tuple[str, ...]:
    """The cluster's tagged members among `ids`: an untagged replica of the old primary is not rds-ha's to
    take out of DNS or delete (IAM would refuse the delete: ActOnClusterMembers requires the tag)."""
    return tuple(i for i in ids if i in topo.instances and topo.instances[i].cluster_tag == topo.cluster.name)


def decide_switchover(topo: Topology, request: FailoverRequest) -> Plan:
    """A planned change of primary: the primary must be healthy, the target eligible as for a failover
    and caught up to switchover.max_lag_seconds (judged by its latest ReplicaLag)."""
    state, limit = topo.state, topo.cluster.switchover.max_lag_seconds
    if state.workflow is not None:
        wf = state.workflow
        return Plan("refused", f"{wf.kind} {wf.old_primary} -> {wf.new_primary} already in progress (step: {wf.step})")
    primary = topo.primary
    if primary is None:
        return Plan("refused", f"primary {state.primary} not found")
    if primary.is_replica:
        return Plan("refused", f"{primary.id} is itself a replica of {primary.source}; the config's primary is wrong")
    if primary.status != AVAILABLE:
        return Plan("refused", f"primary {primary.id} is {primary.status}: that is a failover (rds-ha failover), not a switchover")
    refusal = _not_a_replica(topo, request.target)
    if refusal is not None:
        return refusal
    verdicts, eligible = _ranked(_judged_now(topo), request)
    if not eligible:
        return Plan("refused", f"no replica qualifies as the new primary ({_none_qualify(verdicts, state.primary)})", candidates=tuple(verdicts))
    chosen = eligible[0]
    lag = chosen.lag if chosen.lag is not None else math.inf
    if lag > limit:
        return Plan(
            "waiting",
            f"{chosen.instance} lag {_fmt(lag)} > switchover.max_lag_seconds {_fmt(limit)}: waiting for it to catch up",
            candidates=tuple(verdicts),
            chosen=chosen.instance,
        )
    wf = Workflow(
        id=request.workflow_id,
        kind="switchover",
        trigger=request.trigger,
        manual=True,
        started_at=topo.now,
        failure_time=topo.now,
        old_primary=state.primary,
        new_primary=chosen.instance,
        orphans=_members(topo, (v.instance for v in verdicts if v.instance != chosen.instance)),
        step="promote",
    )
    why = "requested target" if request.target else "least lag among eligible replicas"
    return Plan(
        "start",
        f"switch over to {chosen.instance} (lag {_fmt(lag)} <= {_fmt(limit)}; {why})",
        actions=(StartWorkflow(reason=request.trigger, workflow=wf),),
        candidates=tuple(verdicts),
        chosen=chosen.instance,
    )


def diff_records(existing: tuple[Record, ...], desired: list[Record]) -> tuple[RecordChange, ...]:
    """Route 53 changes turning `existing` into `desired` (same name): a DELETE of each record set as it
    was read, then a CREATE of each new one. One batch is a transaction, and a DELETE must match the
    current record exactly: if another run moved a record since it was read, the batch fails whole
    (a compare-and-swap) instead of overwriting it."""

    def key(r: Record) -> tuple[str | None, str, int | None, int | None]:
        return (r.set_identifier, r.value, r.ttl, r.weight)

    want = {key(r) for r in desired}
    have = {key(r) for r in existing}
    deletes = [RecordChange("DELETE", r) for r in existing if key(r) not in want]
    creates = [RecordChange("CREATE", r) for r in desired if key(r) not in have]
    return tuple(deletes + creates)


def writer_changes(topo: Topology, primary: Instance) -> tuple[RecordChange, ...]:
    dns = topo.cluster.dns
    if not primary.endpoint:
        return ()
    return diff_records(topo.writer, [Record(dns.writer, primary.endpoint, dns.ttl)])


def _by(reading: LagReading) -> str:
    return "" if reading.source == "ReplicaLag" else f" ({reading.source})"


def reader_verdicts(topo: Topology, primary: Instance, exclude: frozenset[str]) -> list[ReaderVerdict]:
    """For each replica of `primary`: does it serve reads, and why (or why not).

    Lag has hysteresis: a replica in the reader set leaves it above `reader_max_lag_seconds`; one
    out of it returns only at or below `reader_rejoin_lag_seconds`. Route 53 is the memory of who
    is in, so a crash or a cold start changes nothing."""
    dns = topo.cluster.dns
    members = {r.set_identifier for r in topo.reader}
    high, low = dns.reader_max_lag_seconds, dns.reader_rejoin_lag
    out = []
    for replica in topo.replicas_of(primary.id):
        reading = topo.recent_lag.get(replica.id) if topo.recent_lag is not None else None
        stopped_at = topo.state.replication_stopped.get(replica.id)
        serving, reason = False, ""
        if replica.id in exclude:
            reason = "fenced" if replica.fenced or replica.id in topo.state.fenced else "leaving with the old primary"
        elif replica.fenced:
            reason = "fenced"
        elif replica.status != AVAILABLE:
            reason = f"status {replica.status}"
        elif not replica.endpoint:
            reason = "no endpoint yet"
        elif replica.region != primary.region:
            reason = f"in {replica.region}; the reader name serves {primary.region}"
        elif stopped_at is not None and (reading is None or reading.at <= stopped_at or reading.seconds < 0):
            reason = f"replication stopped (RDS event at {stopped_at.isoformat(timespec='seconds')})"
        elif topo.recent_lag is None:
            serving, reason = True, "available (lag not read for this decision)"
        elif reading is None:
            serving = replica.id in members
            reason = "no recent ReplicaLag data; kept in" if serving else "no ReplicaLag data yet"
        elif reading.seconds < 0:
            reason = "replication broken (SQL probe)" if reading.source == "SQL probe" else "replication not active (ReplicaLag -1)"
        elif replica.id in members:
            serving = reading.seconds <= high
            reason = f"lag {_fmt(reading.seconds)}{_by(reading)} {'<=' if serving else '>'} reader_max_lag {_fmt(high)}"
        else:
            serving = reading.seconds <= low
            lag = f"lag {_fmt(reading.seconds)}{_by(reading)}"
            reason = f"caught up: {lag} <= rejoin {_fmt(low)}" if serving else f"{lag}; rejoins at <= {_fmt(low)}"
        out.append(ReaderVerdict(replica.id, serving, reason))
    return out


def reader_changes(topo: Topology, primary: Instance, exclude: frozenset[str]) -> tuple[RecordChange, ...]:
    """Weighted CNAMEs (equal weights), one per serving replica of `primary`; the primary itself when none
    serves (HAProxy's `backup` server)."""
    dns = topo.cluster.dns
    if dns.reader is None:
        return ()
    serving = {v.instance for v in reader_verdicts(topo, primary, exclude) if v.serving}
    targets = [topo.instances[i] for i in sorted(serving)] or ([primary] if primary.endpoint else [])
    desired = [Record(dns.reader, t.endpoint or "", dns.ttl, set_identifier=t.id, weight=1) for t in targets]
    return diff_records(topo.reader, desired)


def _dns_actions(topo: Topology, primary: Instance, exclude: frozenset[str], writer: bool, why: str) -> list[Action]:
    actions: list[Action] = []
    zone = topo.cluster.dns.zone_id
    if writer:
        changes = writer_changes(topo, primary)
        if changes:
            actions.append(ChangeRecords(reason=f"writer must point at the primary {primary.id}", zone_id=zone, changes=changes, role="writer"))
    changes = reader_changes(topo, primary, exclude)
    if changes:
        actions.append(ChangeRecords(reason=why, zone_id=zone, changes=changes, role="reader"))
    return actions


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


def _redundancy(
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
            )
        )
    for other in cfg.replicas.cross_region if remote else ():
        if other.region == primary.region or other.region in topo.unreadable:
            continue  # (a region that could not be read may hold its replicas: none is created blind)
        have = live_replicas(topo, primary, other.region)
        for _ in range(other.count - len(have)):
            name = replica_name(topo, suffix, taken)
            taken.add(name)
            actions.append(
                CreateReplica(
                    reason=f"{primary.id} has {len(have)} replica(s) in {other.region}, replicas.cross_region asks for {other.count}",
                    instance=name,
                    source=primary.arn or primary.id,
                    instance_class=other.instance_class or cfg.replicas.instance_class or primary.instance_class,
                    tags=tags,
                    region=other.region,
                    source_region=primary.region,
                    kms_key_id=other.kms_key_id,
                    subnet_group=other.subnet_group,
                    security_group_ids=other.security_group_ids,
                )
            )
    return actions


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


def plan_workflow(topo: Topology) -> Plan:
    """The next steps of the failover in progress, derived from what AWS shows now."""
    wf = topo.state.workflow
    assert wf is not None
    cfg = topo.cluster
    new = topo.instances.get(wf.new_primary)
    old = topo.instances.get(wf.old_primary)
    out_of_dns = frozenset({wf.old_primary, *wf.orphans})
    actions: list[Action] = []

    if new is None:
        return Plan("blocked", f"{wf.new_primary}, chosen for promotion, no longer exists", (AbortWorkflow(reason=f"{wf.new_primary} disappeared"),))
    limit = cfg.failover.deadline_seconds
    if wf.verified_at is None and (topo.now - wf.started_at).total_seconds() > limit:
        missing = "promotion" if new.is_replica else "writer record verification"
        why = f"{wf.kind} not verified within failover.deadline_seconds {limit}s (still waiting for the {missing}: {wf.step})"
        return Plan("blocked", why, (AbortWorkflow(reason=why),))
    fence: list[Action] = []
    if old is not None and not old.fenced:
        fence.append(Fence(reason=f"{old.id} was the primary; it must never take writes again", instance=old.id))

    if new.is_replica:
        if new.status in TERMINAL_STATUSES:
            return Plan("blocked", f"{new.id} went {new.status} before its promotion finished", (*fence, AbortWorkflow(reason=f"{new.id} is {new.status}")))
        # The promotion is the long pole: issue it first, then the fence and the reader set.
        if wf.promote_issued_at is None and new.status == AVAILABLE:
            retention = max(1, old.backup_retention if old is not None else 1)
            actions.append(Promote(reason=f"{new.id} is the chosen candidate", instance=new.id, backup_retention=retention))
        else:
            actions.append(Wait(reason=f"promotion of {new.id} in progress (status {new.status})"))
        # Until it is promoted the candidate is the best copy of the data: it alone serves reads.
        actions += fence + _dns_actions(topo, new, out_of_dns, writer=False, why="orphans and the old primary leave the reader set at once")
        return Plan("progress", "promoting", tuple(actions))
    actions += fence

    if new.status not in WRITABLE:
        if new.status in TERMINAL_STATUSES:
            return Plan("blocked", f"promoted {new.id} is {new.status}", (*actions, AbortWorkflow(reason=f"{new.id} is {new.status}")))
        actions += _dns_actions(topo, new, out_of_dns, writer=False, why="orphans and the old primary leave the reader set at once")
        actions.append(Wait(reason=f"{new.id} is promoted but {new.status}; the writer moves when it accepts writes"))
        return Plan("progress", "finishing promotion", tuple(actions))

    # Promoted and writable: move the writer, then rebuild redundancy.
    actions += _dns_actions(topo, new, out_of_dns, writer=True, why="reader set follows the new primary's replicas")
    if topo.state.primary != new.id:
        actions.append(RecordPrimary(reason=f"{new.id} is promoted and the writer points at it", instance=new.id))
    if wf.alarms_moved_at is None and cfg.alarms.failover:
        # Alarms that watch the old primary's instance would never see the new primary fail.
        why = f"{new.id} is the primary: a second failure must be seen"
        actions.append(RetargetAlarms(reason=why, alarms=tuple(cfg.alarms.failover), old=wf.old_primary, new=new.id))

    live = live_replicas(topo, new)
    ready = [r for r in live if r.status == AVAILABLE]
    waiting: list[str] = []
    creates = _redundancy(topo, new, old, wf.id, f"rds-ha failover {wf.id}")
    refused = no_replicas_of(new) if creates and new.status == AVAILABLE else None
    if refused:
        waiting.append(f"redundancy cannot be rebuilt: {refused}")
        creates = []
    elif creates and new.status == AVAILABLE:
        actions += creates
    elif creates:
        waiting.append(f"{new.id} is {new.status}; replicas are created once it is available")
    if len(ready) < cfg.replicas.min and not creates and not refused:
        waiting.append(f"{len(ready)}/{cfg.replicas.min} new replicas available")

    orphans = [topo.instances[o] for o in wf.orphans if o in topo.instances and topo.instances[o].status != "deleting"]
    if cfg.failover.delete_orphans and orphans:
        named = {r.set_identifier for r in (*topo.reader, *topo.writer)}
        if len(ready) >= cfg.replicas.min:
            # Never delete what a record still names: this plan's reader change goes first, the delete next run.
            actions += [
                DeleteInstance(reason="orphaned replica of the old primary; its replacements are available", instance=o.id)
                for o in orphans
                if o.id not in named
            ]
            if any(o.id in named for o in orphans):
                waiting.append("orphans still named by a record are deleted once the record is gone")
        else:
            waiting.append("orphans are deleted once their replacements are available")

    if cfg.failover.stop_old_primary and old is not None and old.status == AVAILABLE:
        attached = [r for r in topo.replicas_of(old.id) if r.status != "deleting"]
        if not attached:
            actions.append(StopInstance(reason="failover.stop_old_primary is set and nothing replicates from it", instance=old.id))
        else:
            waiting.append(f"{old.id} is stopped once its replicas are gone")

    moving_writer = any(isinstance(a, ChangeRecords) and a.role == "writer" for a in actions)
    if wf.verified_at is None and not moving_writer:
        verified, state = _writer_verified(topo, new)
        if verified:
            actions.append(VerifyWriter(reason=state, instance=new.id))
        else:
            waiting.append(state)

    if any(a.mutates for a in actions):
        return Plan("progress", "restoring redundancy", tuple(actions))
    if waiting:
        return Plan("waiting", "; ".join(waiting), (Wait(reason="; ".join(waiting)),))
    return Plan("complete", f"{new.id} is the primary with {len(ready)} replica(s)", (CompleteWorkflow(reason="every step verified"),))


# Route 53 propagates a change to all its servers "generally within 60 seconds" (GetChange: INSYNC).
PROPAGATION_SECONDS = 60


def _writer_verified(topo: Topology, new: Instance) -> tuple[bool, str]:
    """Is the writer move done as far as clients can tell? Its change INSYNC, and Route 53's
    authoritative answer (public zones) or its record (private zones) naming only the new primary.
    A check that cannot run (Route 53 throttles, or refuses TestDNSAnswer) holds nothing up: the
    record as Route 53 holds it decides, once the change is INSYNC (or, with GetChange failing too,
    older than Route 53's propagation time)."""
    check, expected = topo.writer_check, new.endpoint
    if check is None:
        return False, "writer record not checked yet"
    if check.change_status not in (None, "INSYNC"):
        return False, f"writer change {check.change_status} (Route 53 propagating)"
    wf = topo.state.workflow
    if not check.status_known:
        moved = wf.writer_moved_at if wf is not None else None
        if moved is None or (topo.now - moved).total_seconds() < PROPAGATION_SECONDS:
            return False, f"{check.unchecked}; waiting {PROPAGATION_SECONDS}s after the writer change for Route 53 to propagate it"
    if check.answer is not None:
        if check.answer != (expected,):
            return False, f"Route 53 answers {', '.join(check.answer) or 'nothing'} for {topo.cluster.dns.writer}, not {expected}"
        return True, f"writer change INSYNC; Route 53 answers {expected}"
    if [r.value for r in topo.writer] != [expected]:
        return False, f"the writer record is {', '.join(r.value for r in topo.writer) or 'missing'}, not {expected}"
    if check.unchecked is not None:
        insync = "INSYNC" if check.status_known else f"older than {PROPAGATION_SECONDS}s"
        return True, f"{check.unchecked}: verified from the record as Route 53 holds it (writer change {insync}; the record names {expected})"
    return True, f"writer change INSYNC; private zone: the record names {expected} (TestDNSAnswer serves public zones only)"


def plan_steady(topo: Topology, suffix: str = "steady") -> Plan:
    """Outside a failover: keep the writer on the primary, the reader over its serving replicas,
    replicas.min (and the cross-region replicas) in place, and Multi-AZ as desired."""
    primary = topo.primary
    if primary is None:
        return Plan("steady", f"primary {topo.state.primary} not found; DNS left as it is")
    if primary.is_replica or primary.fenced:
        return Plan("steady", f"primary {primary.id} is a replica or fenced; DNS left as it is")
    exclude = frozenset(topo.state.fenced)
    actions = _dns_actions(topo, primary, exclude, writer=True, why="reader set follows the primary's serving replicas")
    reasons = ["DNS drifted"] if actions else []
    if primary.status == AVAILABLE:
        creates = _redundancy(topo, primary, None, suffix, "rds-ha reconcile")
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


def _scale_candidates(topo: Topology) -> str | None:
    """The replica a failover would promote now (latest lag): scale-in never removes it."""
    _, eligible = _ranked(_judged_now(topo), FailoverRequest(trigger="scale-in", failure_time=topo.now, workflow_id="", automatic=True))
    return eligible[0].instance if eligible else None


def plan_scale(topo: Topology, direction: Scaling, suffix: str, trigger: str, force: bool = False, az: str | None = None) -> Plan:
    """One replica more or less, within replicas.min/max and the direction's cooldown (`force`
    skips the cooldown: an operator's explicit request)."""
    cfg, state, now = topo.cluster, topo.state, topo.now
    if state.workflow is not None:
        return Plan("refused", f"failover {state.workflow.old_primary} -> {state.workflow.new_primary} in progress; scaling waits")
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
        create = _redundancy(topo, primary, None, suffix, trigger, want=len(live) + 1, remote=False)[0]
        action = replace(create, reason=f"{trigger}: {len(live)} -> {len(live) + 1} replicas (max {cfg.replicas.max})", scaling="scale_out", az=az or create.az)
        return Plan("start", f"add replica {action.instance}" + (f" in {action.az}" if action.az else "") + f": {action.reason}", (action,))
    if len(live) <= cfg.replicas.min:
        return Plan("refused", f"{len(live)} replica(s), at replicas.min {cfg.replicas.min}")
    keep = _scale_candidates(topo)
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
    why = "not available" if victim.status != AVAILABLE else f"lag {_fmt(reading.seconds)}" if reading and reading.seconds >= 0 else "lag unknown"
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
    action = CreateReplica(
        reason=f"added by {by}",
        instance=replica_name(topo, suffix, set(topo.instances)),
        source=primary.arn or primary.id,
        az=az,
        instance_class=(other.instance_class if other else None) or cfg.replicas.instance_class or primary.instance_class,
        tags={TAG_CLUSTER: cfg.name, TAG_ROLE: "replica", TAG_CREATED_BY: f"added by {by}"},
        region=region,
        source_region=primary.region,
        kms_key_id=other.kms_key_id if other else None,
        subnet_group=other.subnet_group if other else None,
        security_group_ids=other.security_group_ids if other else (),
    )
    note = "" if other else f" ({region} is not in replicas.cross_region: encrypted sources need a kms_key_id there)"
    return Plan("start", f"add replica {action.instance} in {region}{note}", (action,))


def plan_remove(topo: Topology, victim: Instance, reason: str, scaling: Scaling | None = None) -> Plan:
    """Take a replica out of the reader set, then delete it: DNS never names a deleted instance."""
    primary = topo.primary
    actions: list[Action] = []
    if primary is not None:
        dns = _dns_actions(topo, primary, frozenset({victim.id, *topo.state.fenced}), writer=False, why=f"{victim.id} is being removed")
        actions += [replace(a, blocking=True) if isinstance(a, ChangeRecords) else a for a in dns]
    actions.append(DeleteInstance(reason=reason, instance=victim.id, what="replica", scaling=scaling))
    return Plan("start", f"remove replica {victim.id}: {reason}", tuple(actions))


def plan_remove_replica(topo: Topology, instance: str, by: str, force: bool = False) -> Plan:
    """An operator's `replicas remove`: refused below replicas.min, or for the best failover candidate unless forced."""
    primary = topo.primary
    victim = topo.instances.get(instance)
    if topo.state.workflow is not None:
        return Plan("refused", "a failover is in progress; remove replicas once it completes")
    if primary is None or victim is None or victim.source != primary.id:
        return Plan("refused", f"{instance} is not a replica of the primary {topo.state.primary}")
    if victim.region == primary.region:
        live = live_replicas(topo, primary)
        if len(live) <= topo.cluster.replicas.min and victim in live:
            return Plan("refused", f"{len(live)} replica(s) in {primary.region}, at replicas.min {topo.cluster.replicas.min}; lower it first")
        if not force and _scale_candidates(topo) == instance:
            return Plan("refused", f"{instance} is the best failover candidate now; use --force to remove it anyway")
    return plan_remove(topo, victim, f"removed by {by}")


def outline(topo: Topology, wf: Workflow) -> list[str]:
    """The steps a failover will take, in order (what `failover --dry-run` prints)."""
    cfg = topo.cluster
    new = topo.instances.get(wf.new_primary)
    steps = [f"fence {wf.old_primary}: tag it {TAG_FENCED}, take it out of every record (never delete it)"]
    if wf.orphans:
        steps.append(f"take the orphans {', '.join(wf.orphans)} out of the reader set")
    steps.append(f"promote {wf.new_primary}; wait until it is standalone and accepts writes")
    steps.append(f"UPSERT {cfg.dns.writer} CNAME -> {new.endpoint if new else wf.new_primary} (TTL {cfg.dns.ttl}s)")
    steps.append(f"create replicas of {wf.new_primary} up to replicas.min={cfg.replicas.min}, spread over AZs")
    if wf.orphans and cfg.failover.delete_orphans:
        steps.append(f"delete the orphans {', '.join(wf.orphans)} once their replacements are available")
    if cfg.failover.stop_old_primary:
        steps.append(f"stop {wf.old_primary} once nothing replicates from it")
    return steps
