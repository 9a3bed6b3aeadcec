"""A game day: fail a cluster over (or switch it over) on purpose and measure the recovery.

The timeline is built from the history the workflow records anyway (every step with its time), so a
drill measures exactly what a real failover does, on AWS or on the local simulated clock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..core.config import ClusterConfig
from ..core.planner import FailoverRequest
from .deps import Deps
from .failover import Failover
from .reconcile import Reconcile
from .results import Result
from .switchover import Switchover

if TYPE_CHECKING:
    from ..probe.client import WriteProbe

Mode = Literal["failover", "switchover"]

# History kinds that mark the milestones of a recovery, in order: a short name and what it means.
MILESTONES: list[tuple[str, str, str]] = [
    ("started", "decision", "decision taken, workflow started (lease held)"),
    ("writes_frozen", "writes frozen", "switchover.fence: the old primary's parameter group made it read-only"),
    ("writes_sealed", "writes sealed", "its open transactions ended, its final write position recorded"),
    ("promote_issued", "promote issued", "PromoteReadReplica issued (a fenced switchover: once the target replayed that position)"),
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
    # What a client writing through the writer name saw (`--probe-dsn-secret`): downtime, lost writes.
    client: dict[str, Any] | None = None

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


# Default ports when neither the secret nor RDS names one.
_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}


def write_probe(d: Deps, cfg: ClusterConfig, secret_arn: str, endpoints: dict[str, tuple[str, int]] | None = None) -> WriteProbe:
    """The drill's client from a database secret. It connects to the writer name as applications do;
    with `endpoints` (INSTANCE -> HOST:PORT: SSH tunnels, local servers) it follows the writer record
    in Route 53 to the instance it names and connects through that instance's endpoint instead."""
    from ..adapters.credentials import CredentialSource
    from ..core.config import ProbeConfig
    from ..core.errors import RdsHaError
    from ..probe.client import WriteProbe
    from ..probe.model import Credentials, EngineError

    secret = CredentialSource(d.clients).secret(secret_arn)
    state = d.snapshots.state(cfg)
    region = state.primary_region or cfg.region
    primary = next((i for i in d.rds.describe_ids(region, [state.primary])), None)
    engine = str(secret.get("engine") or (primary.engine if primary is not None else "postgres"))
    if engine not in _PORTS:
        raise RdsHaError(f"the drill's client speaks PostgreSQL, MySQL and MariaDB, not {engine}")
    port = int(secret.get("port") or (primary.port if primary is not None and primary.port else _PORTS[engine]))
    settings = cfg.probe or ProbeConfig(secret_arn=secret_arn)
    database = secret.get("dbname") or settings.database
    if not endpoints:
        name = cfg.dns.writer

        def by_name() -> tuple[str, int, str]:
            return name, port, name

        return WriteProbe(engine, Credentials(secret["username"], secret["password"]), settings, database, by_name)
    tunnels = dict(endpoints)
    by_endpoint: dict[str, str] = {}

    def via_record() -> tuple[str, int, str]:
        records = d.route53.records(cfg.dns.zone_id, cfg.dns.writer)
        value = records[0].value if records else None
        if value is None:
            raise EngineError("down", f"no writer record {cfg.dns.writer}")
        if value not in by_endpoint:
            by_endpoint.update({i.endpoint: i.id for r in cfg.regions for i in d.rds.describe_all(r) if i.endpoint})
        iid = by_endpoint.get(value)
        if iid is None or iid not in tunnels:
            raise EngineError("config", f"the writer record names {value}, which no --endpoint maps")
        return tunnels[iid][0], tunnels[iid][1], iid

    return WriteProbe(engine, Credentials(secret["username"], secret["password"]), settings, database, via_record)


def _attach(clock: Any, client: WriteProbe, interval: float) -> Callable[[], None]:
    """Run the client's writes while the drill runs: at every step of a simulated clock (tests, the
    demo), or every `interval` seconds of real time in a thread. Returns the function that stops it."""
    watch = getattr(clock, "watch", None)
    if watch is not None:
        stop: Callable[[], None] = watch(client.step)
        return stop
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval):
            client.step(clock.now())

    thread = threading.Thread(target=loop, name="drill-client", daemon=True)
    thread.start()

    def finish() -> None:
        done.set()
        thread.join(timeout=interval + 30)

    return finish


class Drill:
    def __init__(self, deps: Deps, failover: Failover, switchover: Switchover, reconcile: Reconcile) -> None:
        self.d, self.failover, self.switchover, self.reconcile = deps, failover, switchover, reconcile

    def client(self, cfg: ClusterConfig, secret_arn: str, endpoints: dict[str, tuple[str, int]] | None = None) -> WriteProbe:
        return write_probe(self.d, cfg, secret_arn, endpoints)

    def run(
        self,
        cfg: ClusterConfig,
        mode: Mode,
        by: str,
        deadline: datetime,
        target: str | None = None,
        client: WriteProbe | None = None,
        client_interval: float = 1.0,
    ) -> DrillReport:
        """Fail over (or switch over) now, keep driving until the workflow completes or the deadline
        passes, and return the measured timeline; `client` writes through the writer name meanwhile."""
        clock = self.d.clock
        started = clock.now()
        old_primary = self.d.snapshots.state(cfg).primary
        detach: Callable[[], None] | None = None
        if client is not None:
            client.step(started)  # the baseline: the writer name takes writes before the drill
            detach = _attach(clock, client, client_interval)
        try:
            report = self._run(cfg, mode, by, deadline, target, started, old_primary)
        finally:
            if detach is not None:
                detach()
        if client is not None:
            if clock.now() < deadline:
                client.step(clock.now())  # one more after the end: an outage still open is measured, not guessed
            seen = client.report()
            report.client = asdict(seen)
            lost = f"{seen.lost_writes} acknowledged write(s) lost" if seen.verified else f"lost writes not verified ({seen.verify_error})"
            report.notes.append(
                f"client through {cfg.dns.writer}: {seen.attempts} writes, {seen.failed} failed, "
                f"write downtime {seen.write_downtime_seconds:g}s (longest {seen.longest_outage_seconds or 0:g}s); {lost}"
            )
        return report

    def _drive(self, cfg: ClusterConfig, mode: Mode, by: str, deadline: datetime, target: str | None, started: datetime) -> Result:
        if mode == "switchover":
            result = self.switchover.switchover(cfg, target, f"drill by {by}", deadline)
        else:
            request = FailoverRequest(
                trigger=f"drill by {by}", failure_time=started, workflow_id=uuid.uuid4().hex[:6], automatic=False, target=target, drill=True
            )
            result = self.failover.failover(cfg, request, deadline)
        poll = timedelta(seconds=self.d.poll_seconds)
        while self.d.snapshots.state(cfg).workflow is not None and self.d.clock.now() + poll <= deadline:
            self.d.clock.sleep(self.d.poll_seconds)
            result = self.reconcile.run([cfg.name], deadline)[0]
        return result

    def _run(self, cfg: ClusterConfig, mode: Mode, by: str, deadline: datetime, target: str | None, started: datetime, old_primary: str) -> DrillReport:
        result = self._drive(cfg, mode, by, deadline, target, started)
        state = self.d.snapshots.state(cfg)
        history = self.d.table.history(cfg.name, limit=200)
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
        moved, frozen = by_kind.get("writer_dns"), by_kind.get("writes_frozen")
        # A fenced switchover refuses writes from the fence on: its downtime is the fence-to-writer-moved window.
        report.write_downtime_seconds = round(moved - frozen, 3) if moved is not None and frozen is not None else moved
        report.total_seconds = by_kind.get("completed")
        report.notes += _notes(cfg, mode, frozen is not None)
        return report


def _notes(cfg: ClusterConfig, mode: Mode, fenced: bool) -> list[str]:
    notes: list[str] = []
    if mode == "failover":
        notes.append("a drill fails over a healthy primary: it stays up, fenced; writes it accepted after the promotion are not on the new primary")
    elif not fenced:
        notes.append("no switchover.fence: the old primary took writes until the writer moved; those after the target's last replay are lost")
    since = "the write fence" if fenced else "the trigger"
    notes.append(
        f"write downtime here is from {since} to the writer record's move; clients also wait out the record's TTL "
        f"({cfg.dns.ttl}s) and their own reconnects (--probe-dsn-secret measures what a client sees)"
    )
    return notes
