"""A game day: fail a cluster over (or switch it over) on purpose and measure the recovery.

The timeline is built from the history the workflow records anyway (every step with its time), so a
drill measures exactly what a real failover does, on AWS or on the local simulated clock.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from .core.config import ClusterConfig
from .core.planner import FailoverRequest
from .results import Result

if TYPE_CHECKING:
    from .service import Service

Mode = Literal["failover", "switchover"]

# History kinds that mark the milestones of a recovery, in order: a short name and what it means.
MILESTONES: list[tuple[str, str, str]] = [
    ("started", "decision", "decision taken, workflow started (lease held)"),
    ("promote_issued", "promote issued", "PromoteReadReplica issued"),
    ("writer_dns", "writer moved", "promotion complete: writer record moved to the new primary"),
    ("writer_verified", "DNS verified", "writer change INSYNC and answered by Route 53"),
    ("completed", "redundancy restored", "redundancy restored: replicas available, orphans gone"),
]


@dataclass
class Milestone:
    kind: str
    name: str
    label: str
    at: str
    seconds: float


@dataclass
class DrillReport:
    cluster: str
    mode: Mode
    outcome: str
    reason: str
    started_at: str
    old_primary: str
    new_primary: str | None
    milestones: list[Milestone] = field(default_factory=list)
    # Seconds from the trigger until writes are accepted behind the writer name (AWS's share included).
    write_downtime_seconds: float | None = None
    total_seconds: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def timeline(history: list[dict[str, Any]], since: datetime, mode: Mode) -> list[Milestone]:
    """The first occurrence of each milestone since `since` (history is newest first)."""
    out: list[Milestone] = []
    entries = [h for h in reversed(history) if datetime.fromisoformat(h["at"]) >= since]
    for kind, name, label in MILESTONES:
        wanted = f"{mode}_{kind}" if kind in ("started", "completed") else kind
        hit = next((h for h in entries if h["kind"] == wanted), None)
        if hit is not None:
            at = datetime.fromisoformat(hit["at"])
            out.append(Milestone(kind, name, label, hit["at"], round((at - since).total_seconds(), 3)))
    return out


def run_drill(svc: Service, cfg: ClusterConfig, mode: Mode, by: str, deadline: datetime, target: str | None = None) -> DrillReport:
    """Fail over (or switch over) now, keep driving until the workflow completes or the deadline
    passes, and return the measured timeline."""
    started = svc.clock.now()
    old_primary = svc.snapshots.state(cfg).primary
    if mode == "switchover":
        result: Result = svc.switchover(cfg, target, f"drill by {by}", deadline)
    else:
        request = FailoverRequest(trigger=f"drill by {by}", failure_time=started, workflow_id=uuid.uuid4().hex[:6], automatic=False, target=target, drill=True)
        result = svc.failover(cfg, request, deadline)
    while svc.snapshots.state(cfg).workflow is not None and svc.clock.now() + timedelta(seconds=svc.poll_seconds) <= deadline:
        svc.clock.sleep(svc.poll_seconds)
        result = svc.reconcile([cfg.name], deadline)[0]
    state = svc.snapshots.state(cfg)
    history = svc.table.history(cfg.name, limit=200)
    marks = timeline(history, started, mode)
    report = DrillReport(
        cluster=cfg.name,
        mode=mode,
        outcome="complete" if state.workflow is None and state.primary != old_primary else result.outcome,
        reason=result.reason,
        started_at=started.isoformat(),
        old_primary=old_primary,
        new_primary=state.primary if state.primary != old_primary else None,
        milestones=marks,
        history=[h for h in reversed(history) if datetime.fromisoformat(h["at"]) >= started],
    )
    by_kind = {m.kind: m.seconds for m in marks}
    report.write_downtime_seconds = by_kind.get("writer_dns")
    report.total_seconds = by_kind.get("completed")
    if mode == "failover":
        report.notes.append("a drill fails over a healthy primary: it stays up, fenced; writes it accepted after the promotion are not on the new primary")
    report.notes.append(
        "write downtime here is from the trigger to the writer record's move; clients also wait out the record's TTL "
        f"({cfg.dns.ttl}s) and their own reconnects (measure them with a client probe)"
    )
    return report
