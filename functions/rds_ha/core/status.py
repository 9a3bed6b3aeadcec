"""What `rds-ha status` shows of a cluster, as a typed model built from one topology (pure).

Every sentence in it is the planner's: the reader set's verdicts (`reader_verdicts`), each failover
candidate's verdict and the readiness reasons (`readiness.assess`). `as_dict` is the JSON of
`status --json`; the CLI renders the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .actions import CandidateVerdict, ReaderVerdict
from .models import AVAILABLE, Blocked, LeaseView, Marker, ProxyTarget, Topology, Workflow
from .planner import proxy_limitation, reader_verdicts
from .readiness import Readiness

Role = Literal["replica", "orphan", "fenced", "member", "promoting"]


@dataclass(frozen=True)
class MemberRow:
    id: str
    role: Role
    status: str
    az: str | None
    source: str | None
    lag: float | None
    fenced: bool
    never_promote: bool


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
    acknowledged: Marker | None
    fenced: tuple[str, ...]
    readiness: Readiness | None
    reader_set: tuple[ReaderVerdict, ...]
    reader_fallback: bool
    multi_az: MultiAzStatus
    scaling: ScalingStatus
    proxy: ProxyStatus | None = None
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
            "primary": self.primary,
            "primary_status": self.primary_status,
            "primary_az": self.primary_az,
            "replicas": [vars(r) for r in self.replicas],
            "writer": {"name": self.writer.name, "targets": list(self.writer.targets)},
            "reader": {"name": self.reader.name, "targets": list(self.reader.targets)} if self.reader else None,
            "workflow": dump(self.workflow),
            "blocked": dump(self.blocked),
            "last_failover_at": self.last_failover_at,
            "cooldown_until": self.cooldown_until,
            "paused": dump(self.paused),
            "acknowledged": dump(self.acknowledged),
            "fenced": list(self.fenced),
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
    return "fenced" if inst.fenced else "member"


def _members(topo: Topology) -> tuple[MemberRow, ...]:
    return tuple(
        MemberRow(i.id, _role(topo, i.id), i.status, i.az, i.source, topo.lag.get(i.id), i.fenced, i.never_promote)
        for i in topo.instances.values()
        if i.id != topo.state.primary
    )


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


def describe(topo: Topology, readiness: Readiness | None) -> ClusterStatus:
    """The cluster as `status` shows it: `topo` read with each replica's latest lag."""
    cfg, state, primary = topo.cluster, topo.state, topo.primary
    verdicts = tuple(reader_verdicts(topo, primary, frozenset(state.fenced))) if primary is not None and cfg.dns.reader else ()
    cooldown_until = None
    if state.last_failover_at is not None:
        until = state.last_failover_at + timedelta(seconds=cfg.failover.cooldown_seconds)
        cooldown_until = until.isoformat() if until > topo.now else None
    scaling = ScalingStatus(
        cfg.replicas.min,
        cfg.replicas.max,
        state.last_scale_out_at.isoformat() if state.last_scale_out_at else None,
        state.last_scale_in_at.isoformat() if state.last_scale_in_at else None,
    )
    return ClusterStatus(
        cluster=cfg.name,
        region=cfg.region,
        primary=state.primary,
        primary_status=primary.status if primary else "not found",
        primary_az=primary.az if primary else None,
        replicas=_members(topo),
        writer=DnsName(cfg.dns.writer, tuple(r.value for r in topo.writer)),
        reader=DnsName(cfg.dns.reader, tuple(r.value for r in topo.reader)) if cfg.dns.reader else None,
        workflow=state.workflow,
        blocked=state.blocked,
        last_failover_at=state.last_failover_at.isoformat() if state.last_failover_at else None,
        cooldown_until=cooldown_until,
        paused=state.paused,
        acknowledged=state.acknowledged,
        fenced=tuple(state.fenced),
        readiness=readiness,
        reader_set=verdicts,
        reader_fallback=bool(primary and cfg.dns.reader and not any(v.serving for v in verdicts)),
        multi_az=_multi_az(topo),
        scaling=scaling,
        proxy=_proxy(topo),
    )
