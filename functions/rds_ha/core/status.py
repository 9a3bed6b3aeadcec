"""What `rds-ha status` shows of a cluster, as a typed model built from one topology (pure).

Every sentence in it is the planner's: the reader set's verdicts (`reader_verdicts`), each failover
candidate's verdict and the readiness reasons (`readiness.assess`). `as_dict` is the JSON of
`status --json`; the CLI renders the model itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .actions import CandidateVerdict, ReaderVerdict
from .clock import utc
from .models import AVAILABLE, AlarmStatus, Blocked, LeaseView, Marker, ProxyTarget, Topology, Workflow
from .planner import proxy_limitation, reader_verdicts
from .planner.guards import cooldown_left
from .readiness import Readiness

Role = Literal["replica", "orphan", "fenced", "member", "promoting"]


@dataclass(frozen=True)
class MemberRow:
    id: str
    role: Role
    status: str
    az: str | None
    source: str | None
    # The replica's latest lag (seconds): the reading the reader set and the candidates' verdicts judge.
    lag: float | None
    fenced: bool
    never_promote: bool
    # Bytes behind the primary, from the SQL probe's latest reading (None: not probed, or not recent).
    lag_bytes: float | None = None
    # In the reader set (True), kept out of it (False), or no reader name / not a replica (None).
    reader: bool | None = None


@dataclass(frozen=True)
class FencedRow:
    """An old primary kept after a failover: standalone, out of every record, and billed while it runs."""

    id: str
    status: str
    az: str | None
    instance_class: str
    fenced_at: datetime | None
    # Seconds since it was fenced (None: the fence's time is not known).
    age: float | None
    cost: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "az": self.az,
            "instance_class": self.instance_class,
            "fenced_at": utc(self.fenced_at),
            "age_seconds": None if self.age is None else round(self.age),
            "cost": self.cost,
        }


@dataclass(frozen=True)
class AlarmRow:
    """One mapped alarm, its role in the cluster and its state in CloudWatch now."""

    name: str
    role: str
    # OK, ALARM, INSUFFICIENT_DATA; "missing" (not in CloudWatch) or "not read" (DescribeAlarms failed).
    state: str
    since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "state": self.state, "since": utc(self.since)}


@dataclass(frozen=True)
class DnsName:
    name: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class MultiAzStatus:
    actual: bool | None
    desired: bool | None
    set_by: str | None
    in_progress: bool


@dataclass(frozen=True)
class ScalingStatus:
    min: int
    max: int
    last_scale_out_at: str | None
    last_scale_in_at: str | None


@dataclass(frozen=True)
class ProxyStatus:
    """The cluster's proxy target group: each target and its health, and whether it serves the primary."""

    name: str
    target_group: str
    targets: tuple[ProxyTarget, ...]
    # Why the proxy does not serve the primary (None: it does) — readiness's own sentence.
    problem: str | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target_group": self.target_group,
            "targets": [{"instance": t.instance, "state": t.state, "reason": t.reason} for t in self.targets],
            "follows_primary": self.problem is None,
            "problem": self.problem,
            "error": self.error,
        }


@dataclass(frozen=True)
class ClusterStatus:
    cluster: str
    region: str
    primary: str
    primary_status: str
    primary_az: str | None
    replicas: tuple[MemberRow, ...]
    writer: DnsName
    reader: DnsName | None
    workflow: Workflow | None
    blocked: Blocked | None
    last_failover_at: str | None
    cooldown_until: str | None
    paused: Marker | None
    # The ack of the last failover (None: none, or an older one that no longer covers anything).
    acknowledged: Marker | None
    fenced: tuple[FencedRow, ...]
    readiness: Readiness | None
    reader_set: tuple[ReaderVerdict, ...]
    reader_fallback: bool
    multi_az: MultiAzStatus
    scaling: ScalingStatus
    proxy: ProxyStatus | None = None
    alarms: tuple[AlarmRow, ...] = ()
    # The cluster in one line: healthy / degraded: why / failing over: step / blocked: why / paused: by whom.
    verdict: str = ""
    # Which run holds the cluster's lease, as read after the look (None: no run does).
    lease: LeaseView | None = None
    at: datetime | None = None

    @property
    def lease_held(self) -> bool:
        return self.lease is not None and self.at is not None and self.lease.left(self.at) > 0

    @property
    def candidates(self) -> tuple[CandidateVerdict, ...]:
        """Each replica's verdict as a failover candidate now (judged by its latest lag)."""
        return self.readiness.candidates if self.readiness is not None else ()

    def as_dict(self) -> dict[str, Any]:
        def dump(m: Any) -> Any:
            return m.model_dump(mode="json") if m is not None else None

        return {
            "cluster": self.cluster,
            "region": self.region,
            "verdict": self.verdict,
            "primary": self.primary,
            "primary_status": self.primary_status,
            "primary_az": self.primary_az,
            "replicas": [vars(r) for r in self.replicas],
            "fenced": [f.as_dict() for f in self.fenced],
            "alarms": [a.as_dict() for a in self.alarms],
            "writer": {"name": self.writer.name, "targets": list(self.writer.targets)},
            "reader": {"name": self.reader.name, "targets": list(self.reader.targets)} if self.reader else None,
            "workflow": dump(self.workflow),
            "blocked": dump(self.blocked),
            "last_failover_at": self.last_failover_at,
            "cooldown_until": self.cooldown_until,
            "paused": dump(self.paused),
            "acknowledged": dump(self.acknowledged),
            "readiness": self.readiness.as_dict(candidates=False) if self.readiness is not None else None,
            "candidates": [{"instance": v.instance, "eligible": v.eligible, "reason": v.reason, "lag": v.lag} for v in self.candidates],
            "reader_set": [{"id": v.instance, "serving": v.serving, "reason": v.reason} for v in self.reader_set],
            "reader_fallback": self.reader_fallback,
            "multi_az": vars(self.multi_az),
            "scaling": vars(self.scaling),
            "proxy": self.proxy.as_dict() if self.proxy is not None else None,
            "lease": self.lease.as_dict(self.at) if self.lease is not None and self.at is not None else None,
        }


def _role(topo: Topology, iid: str) -> Role:
    state, wf = topo.state, topo.state.workflow
    inst = topo.instances[iid]
    if wf is not None and iid == wf.new_primary:
        return "promoting"
    if inst.source == state.primary:
        return "replica"
    if wf is not None and iid in wf.orphans:
        return "orphan"
    return "fenced" if inst.fenced or iid in state.fenced else "member"


def _members(topo: Topology, reader_set: tuple[ReaderVerdict, ...]) -> tuple[MemberRow, ...]:
    serving = {v.instance: v.serving for v in reader_set}
    latest = topo.recent_lag or {}
    rows = []
    for i in topo.instances.values():
        role = _role(topo, i.id)
        if i.id == topo.state.primary or role == "fenced":
            continue
        reading, engine = latest.get(i.id), topo.engine_reading(i.id)
        lag = reading.seconds if reading is not None else topo.lag.get(i.id)
        lag_bytes = engine.lag_bytes if engine is not None else None
        rows.append(MemberRow(i.id, role, i.status, i.az, i.source, lag, i.fenced, i.never_promote, lag_bytes, serving.get(i.id)))
    return tuple(rows)


def _cost(status: str) -> str:
    """What an old primary costs in this state (RDS bills instance hours while it runs; storage always)."""
    if status in {"deleting", "not found"}:
        return "not billed (being deleted)" if status == "deleting" else "not billed (deleted)"
    if status in {"stopped", "stopping"}:
        # StopDBInstance: "The instance restarts automatically after 7 days."
        return "storage billed; RDS starts it again 7 days after it stopped"
    return "billed: instance hours and storage"


def _fenced(topo: Topology) -> tuple[FencedRow, ...]:
    rows = []
    known = [i for i in topo.instances.values() if i.id != topo.state.primary and _role(topo, i.id) == "fenced"]
    for inst in known:
        at = inst.fenced_at
        age = (topo.now - at).total_seconds() if at is not None else None
        rows.append(FencedRow(inst.id, inst.status, inst.az, inst.instance_class, at, age, _cost(inst.status)))
    seen = {i.id for i in known}
    gone = [iid for iid in topo.state.fenced if iid not in seen and iid not in topo.instances and topo.cluster.region not in topo.unreadable]
    return tuple(rows) + tuple(FencedRow(iid, "not found", None, "-", None, None, _cost("not found")) for iid in gone)


def _alarms(topo: Topology, alarms: Mapping[str, AlarmStatus] | None) -> tuple[AlarmRow, ...]:
    rows = []
    for name, role in topo.cluster.alarms.roles():
        if alarms is None:
            rows.append(AlarmRow(name, role, "not read"))
            continue
        alarm = alarms.get(name)
        rows.append(AlarmRow(name, role, alarm.state, alarm.updated_at) if alarm is not None else AlarmRow(name, role, "missing"))
    return tuple(rows)


def verdict(topo: Topology, readiness: Readiness | None, alarms: tuple[AlarmRow, ...]) -> str:
    """The cluster in one line, the most urgent first: a workflow, a block, a pause, what degrades it."""
    state, primary = topo.state, topo.primary
    if state.workflow is not None:
        wf = state.workflow
        doing = "switching over" if wf.kind == "switchover" else "failing over"
        return f"{doing}: {wf.old_primary} -> {wf.new_primary}, {wf.step} (since {utc(wf.started_at)})"
    if state.blocked is not None:
        return f"blocked: {state.blocked.reason} (since {utc(state.blocked.at)}; rds-ha history {topo.cluster.name})"
    problems = []
    if primary is None or primary.status != AVAILABLE:
        problems.append(f"primary {state.primary} is {primary.status if primary else 'not found'}")
    problems += [f"failover alarm {a.name} in ALARM since {utc(a.since)}" for a in alarms if a.role == "failover" and a.state == "ALARM"]
    # A missing failover alarm is readiness's own reason; alarms of the other roles are checked here.
    problems += [f"alarm {a.name} ({a.role}) {a.state}" for a in alarms if a.state == "not read" or (a.state == "missing" and a.role != "failover")]
    problems += [r for r in (readiness.reasons if readiness is not None else ()) if r not in problems and not r.startswith("paused")]
    if state.paused is not None:
        why = f": {state.paused.reason}" if state.paused.reason else ""
        meanwhile = f"; meanwhile {problems[0]}" if problems else ""
        return f"paused by {state.paused.by}{why} (automation records, changes nothing; rds-ha resume {topo.cluster.name}){meanwhile}"
    if problems:
        more = f" (and {len(problems) - 1} more: see above)" if len(problems) > 1 else ""
        return f"degraded: {problems[0]}{more}"
    serving = len(topo.replicas_of(primary.id)) if primary is not None else 0
    eligible = readiness.eligible if readiness is not None else 0
    return f"healthy: {state.primary} writable, {serving} replica(s), {eligible} eligible for failover"


def _multi_az(topo: Topology) -> MultiAzStatus:
    cfg, state, primary, desired = topo.cluster, topo.state, topo.primary, topo.desired_multi_az
    set_by = state.multi_az.by if state.multi_az else ("config" if cfg.multi_az is not None else None)
    changing = bool(primary and primary.status != AVAILABLE and desired is not None and primary.multi_az != desired)
    return MultiAzStatus(primary.multi_az if primary else None, desired, set_by, changing)


def _proxy(topo: Topology) -> ProxyStatus | None:
    cfg, view = topo.cluster.proxy, topo.proxy
    if cfg is None or view is None:
        return None
    return ProxyStatus(cfg.name, cfg.target_group, view.targets, proxy_limitation(topo), view.error)


def describe(topo: Topology, readiness: Readiness | None, alarms: Mapping[str, AlarmStatus] | None = None) -> ClusterStatus:
    """The cluster as `status` shows it: `topo` read with each replica's latest lag; `alarms`: every mapped
    alarm as CloudWatch shows it (None: not read)."""
    cfg, state, primary = topo.cluster, topo.state, topo.primary
    verdicts = tuple(reader_verdicts(topo, primary, frozenset(state.fenced))) if primary is not None and cfg.dns.reader else ()
    left = cooldown_left(cfg, state, topo.now)
    cooldown_until = utc(topo.now + timedelta(seconds=left)) if left is not None else None
    ack = state.acknowledged
    covers = ack is not None and state.last_failover_at is not None and ack.at >= state.last_failover_at
    scaling = ScalingStatus(cfg.replicas.min, cfg.replicas.max, utc(state.last_scale_out_at), utc(state.last_scale_in_at))
    alarm_rows = _alarms(topo, alarms)
    return ClusterStatus(
        cluster=cfg.name,
        region=cfg.region,
        primary=state.primary,
        primary_status=primary.status if primary else "not found",
        primary_az=primary.az if primary else None,
        replicas=_members(topo, verdicts),
        writer=DnsName(cfg.dns.writer, tuple(r.value for r in topo.writer)),
        reader=DnsName(cfg.dns.reader, tuple(r.value for r in topo.reader)) if cfg.dns.reader else None,
        workflow=state.workflow,
        blocked=state.blocked,
        last_failover_at=utc(state.last_failover_at),
        cooldown_until=cooldown_until,
        paused=state.paused,
        acknowledged=ack if covers else None,
        fenced=_fenced(topo),
        readiness=readiness,
        reader_set=verdicts,
        reader_fallback=bool(primary and cfg.dns.reader and not any(v.serving for v in verdicts)),
        multi_az=_multi_az(topo),
        scaling=scaling,
        proxy=_proxy(topo),
        alarms=alarm_rows,
        verdict=verdict(topo, readiness, alarm_rows),
    )
