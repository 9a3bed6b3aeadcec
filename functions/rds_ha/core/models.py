"""Topology snapshot and persisted cluster state.

`Topology` is the one immutable view of a cluster a decision is taken from (Patroni's `Cluster`):
instances as RDS described them, lag as CloudWatch reported it, DNS records as Route 53 holds
them, and rds-ha's own state from the state table. The planner reads nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from .. import TAG_CLUSTER, TAG_FENCED, TAG_NEVER_PROMOTE
from .clock import utc
from .config import ClusterConfig

# RDS statuses in which an instance serves and can be acted on.
AVAILABLE = "available"
# Statuses of a standalone instance in which it accepts writes.
WRITABLE = frozenset({"available", "backing-up", "configuring-enhanced-monitoring", "configuring-log-exports"})
# Statuses in which RegisterDBProxyTargets takes an RDS instance (RDS's InvalidDBInstanceState answer: "is in an
# unsupported state - CREATING, needs to be in [AVAILABLE, MODIFYING, BACKING_UP]"; the API reference names the
# fault only, "The DB instance isn't in a valid state").
PROXY_REGISTRABLE = frozenset({"available", "modifying", "backing-up"})
# Statuses from which an instance will not come back by itself.
TERMINAL_STATUSES = frozenset(
    {
        "failed",
        "deleting",
        "incompatible-restore",
        "incompatible-parameters",
        "incompatible-network",
        "inaccessible-encryption-credentials",
        "restore-error",
        "storage-full",
        "stopped",
        "stopping",
    }
)
# Statuses in which a promoted (or promoting) replica will not accept writes unless a human repairs it: a promotion
# that ends in one has failed, and its target can never be a second writer (stopped, stopping and storage-full are
# not among them: such an instance may come back by itself, RDS starts a stopped one after seven days).
NEVER_WRITABLE = TERMINAL_STATUSES - {"stopped", "stopping", "storage-full"}


@dataclass(frozen=True)
class Instance:
    id: str
    status: str
    region: str
    az: str | None = None
    engine: str = "postgres"
    instance_class: str = "db.t3.micro"
    endpoint: str | None = None
    port: int | None = None
    # ReadReplicaSourceDBInstanceIdentifier, reduced to the source's identifier (ARNs for cross-region).
    source: str | None = None
    # ReadReplicaDBInstanceIdentifiers: how a snapshot finds the replicas without listing the account,
    # as (region, identifier): cross-region replicas are listed as ARNs of their own region.
    replicas: tuple[tuple[str, str], ...] = ()
    source_region: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    multi_az: bool = False
    backup_retention: int = 0
    deletion_protection: bool = False
    arn: str = ""
    created: datetime | None = None
    engine_version: str = ""
    # MasterUserSecret present: RDS manages the master password in Secrets Manager (ManageMasterUserPassword),
    # and refuses to create a read replica of this instance.
    managed_password: bool = False
    # DBSubnetGroup's name: the instance is in a VPC (None: not in one, or not known).
    subnet_group: str | None = None
    storage_encrypted: bool = False
    # Its DB parameter group (DBParameterGroups[0]); a write fence changes it, so it must be the instance's own.
    parameter_group: str | None = None
    # That group's ParameterApplyStatus: `pending-reboot` once a new group is associated, until the instance reboots.
    parameter_apply_status: str | None = None

    @property
    def is_replica(self) -> bool:
        return self.source is not None

    @property
    def fenced(self) -> bool:
        return TAG_FENCED in self.tags

    @property
    def fenced_at(self) -> datetime | None:
        """When rds-ha fenced it (the fence tag's value); None: not fenced, or a value that is no time."""
        try:
            at = datetime.fromisoformat(self.tags.get(TAG_FENCED, ""))
        except ValueError:
            return None
        return at if at.tzinfo is not None else None

    @property
    def never_promote(self) -> bool:
        return self.tags.get(TAG_NEVER_PROMOTE, "").lower() in {"true", "1", "yes"}

    @property
    def cluster_tag(self) -> str | None:
        return self.tags.get(TAG_CLUSTER)


@dataclass(frozen=True)
class FenceView:
    """A fenced switchover seen over SQL: is the old primary read-only for new transactions, and how far
    has the target replayed (the same measure as WriteFence.position). None: not read, or unreadable (why);
    and its parameter as RDS holds it."""

    frozen: bool | None = None
    replayed: float | None = None
    error: str | None = None
    # The fence parameter's value in the old primary's DB parameter group as RDS shows it (DescribeDBParameters):
    # read on every look while the fence holds, from any process (a Lambda reaches RDS, not the databases).
    parameter: str | None = None
    # Before the fence: settings that would let sessions write through it (PostgreSQL role or database settings of
    # default_transaction_read_only), each as a sentence. The fence is refused while there is one.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxyTarget:
    """One target of the cluster's proxy target group as DescribeDBProxyTargets shows it (an RDS instance)."""

    instance: str
    # TargetHealth.State: REGISTERING, AVAILABLE or UNAVAILABLE.
    state: str
    # TargetHealth.Reason and Description, when RDS gives them (UNREACHABLE, CONNECTION_FAILED, AUTH_FAILURE...).
    reason: str = ""

    @property
    def health(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


@dataclass(frozen=True)
class ProxyView:
    """The cluster's proxy target group (cluster.proxy) as read for this decision; `error`: why it could not be read."""

    targets: tuple[ProxyTarget, ...] = ()
    error: str | None = None

    def target(self, instance: str) -> ProxyTarget | None:
        return next((t for t in self.targets if t.instance == instance), None)


@dataclass(frozen=True)
class LagReading:
    """The latest lag of a replica: CloudWatch's ReplicaLag (1-minute Maximum), or the SQL probe's
    engine-side reading when the cluster is probed and it is recent (-1: replication broken)."""

    seconds: float
    at: datetime
    source: str = "ReplicaLag"


@dataclass(frozen=True)
class EngineReading:
    """The SQL probe's latest sample of a replica (namespace rds-ha): engine-side truth, when present."""

    at: datetime
    broken: bool
    lag_seconds: float | None = None
    # Bytes behind the primary's newest position (or the furthest replica's, when the primary could not be read).
    lag_bytes: float | None = None


@dataclass(frozen=True)
class WriterCheck:
    """Route 53's own view of the writer record after a move: the change's status, and the answer of
    its authoritative servers (None in a private zone, which TestDNSAnswer cannot query)."""

    change_status: str | None
    answer: tuple[str, ...] | None
    # Why a check could not run (Route 53 throttled or refused it): the planner falls back to the record.
    unchecked: str | None = None
    # False when the change's status could not be read (GetChange failed).
    status_known: bool = True


@dataclass(frozen=True)
class AlarmStatus:
    """An alarm as DescribeAlarms shows it."""

    name: str
    state: str
    # When the alarm entered its current state (DescribeAlarms' StateTransitionedTimestamp).
    updated_at: datetime | None = None
    dimensions: Mapping[str, str] = field(default_factory=dict)
    # In ALARM for want of datapoints (TreatMissingData breaching, none received): the metric's absence, which a
    # delivery gap on a healthy primary also produces, not a reading of the primary.
    missing_data: bool = False


@dataclass(frozen=True)
class Record:
    """One Route 53 record set (CNAME) under the writer or reader name."""

    name: str
    value: str
    ttl: int | None = None
    set_identifier: str | None = None
    weight: int | None = None
    type: str = "CNAME"


def same_instant(a: datetime | None, b: datetime) -> bool:
    """One alarm transition, whether its time came from an event (milliseconds) or DescribeAlarms."""
    return a is not None and abs((a - b).total_seconds()) < 0.001


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WriteFence(_Stored):
    """Writes frozen on the old primary through its DB parameter group, recorded before the change is made
    (a crash after it leaves a record to lift it by)."""

    instance: str
    group: str
    parameter: str
    # The group's value before the fence, put back when the fence is lifted.
    previous: str
    requested_at: datetime
    # The old primary's last write position once no session can write (LSN bytes / binlog coordinate).
    position: float | None = None
    sealed_at: datetime | None = None
    lifted_at: datetime | None = None
    # Why it was lifted (or refused).
    outcome: str = ""

    @property
    def holding(self) -> bool:
        return self.lifted_at is None


class Workflow(_Stored):
    """An unfinished failover. Every step is re-derived from AWS state, so a crash loses nothing."""

    id: str
    # A failover replaces a failed primary; a switchover a healthy one (planned: no cooldown, not "unplanned").
    kind: Literal["failover", "switchover"] = "failover"
    trigger: str
    # The guards an operator lifted to start it (--ignore-cooldown, --max-lag N, --allow-healthy-primary).
    overrides: tuple[str, ...] = ()
    # Started by an operator: it runs to its end even while the cluster is paused (pause stops automation, not people).
    manual: bool = False
    started_at: datetime
    failure_time: datetime
    old_primary: str
    new_primary: str
    orphans: tuple[str, ...] = ()
    # Recorded right before PromoteReadReplica is sent: from then on the target may become writable (RDS shows a
    # promoting instance as a replica for minutes), so nothing that depends on it staying a replica (lifting a
    # write fence, ending the workflow, a second promotion) happens unless it provably will not. Given back only
    # when RDS answered the first attempt with a refusal.
    promote_issued_at: datetime | None = None
    promoted_at: datetime | None = None
    writer_moved_at: datetime | None = None
    writer_change_id: str | None = None
    # The writer record's change is INSYNC and Route 53 answers the new primary's endpoint.
    verified_at: datetime | None = None
    # The failover alarms were pointed at the new primary (or tried: a failure is recorded, not retried forever).
    alarms_moved_at: datetime | None = None
    # A switchover's write fence on the old primary (switchover.fence), from before it is requested.
    fence: WriteFence | None = None
    # The cluster's last_failover_at before this failover started it again: given back if the failover ends with
    # no primary changed (its promotion failed), so the cooldown does not hold back the next candidate.
    cooldown_before: datetime | None = None
    # When the workflow was paged for running past failover.deadline_seconds with its promotion issued (it
    # cannot end before its target is writable or has failed for good; it is paged once).
    overdue_at: datetime | None = None
    step: str = "starting"


class HandledTransition(_Stored):
    """An alarm transition a decision was taken on (of any role), so no other delivery or path takes it
    again: one per alarm, the last one."""

    at: datetime
    outcome: str = ""

    def describe(self, alarm: str) -> str:
        return f"this transition of {alarm} was handled already" + (f" ({self.outcome})" if self.outcome else "")


class Marker(_Stored):
    """Who did what, when, and why: a pause or an acknowledgement."""

    by: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class LeaseView:
    """Who holds a cluster's lease and until when, as the state table says (expired or not)."""

    owner: str
    until: datetime

    def left(self, now: datetime) -> float:
        return (self.until - now).total_seconds()

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {"holder": self.owner, "until": utc(self.until), "expired": self.left(now) <= 0}


class MultiAzChoice(_Stored):
    """The desired Multi-AZ state set by an alarm or an operator; it outranks the config's until the next apply."""

    enabled: bool
    by: str
    at: datetime
    reason: str = ""


class Blocked(_Stored):
    at: datetime
    reason: str
    trigger: str


class ClusterState(_Stored):
    """The state item of one cluster. `version` guards every write (optimistic lock)."""

    cluster: str
    primary: str
    version: int = 0
    workflow: Workflow | None = None
    last_failover_at: datetime | None = None
    last_failover_completed_at: datetime | None = None
    blocked: Blocked | None = None
    fenced: tuple[str, ...] = ()
    # While paused, automation decides and records what it would do, and changes nothing.
    paused: Marker | None = None
    # A human looked after the last failover: the cooldown no longer holds the next one back.
    acknowledged: Marker | None = None
    # Where the primary lives when a cross-region failover moved it out of the config's region.
    primary_region: str | None = None
    # When a workflow (a failover or a switchover) made the current primary the primary: an alarm transition
    # before it was about an earlier primary's term.
    primary_since: datetime | None = None
    # Replica scaling: when each direction last acted (its cooldown).
    last_scale_out_at: datetime | None = None
    last_scale_in_at: datetime | None = None
    # The last transition of each mapped alarm a decision was taken on (a second delivery changes nothing).
    handled_alarms: dict[str, HandledTransition] = {}
    multi_az: MultiAzChoice | None = None
    # Replicas whose replication RDS reported stopped (RDS-EVENT-0045/0057), and when.
    replication_stopped: dict[str, datetime] = {}
    # The DB parameter groups rds-ha made for instances (parameter_group_of), and their region: recorded before
    # the copy, deleted once their instance is gone (RDS's default quota is 50 per region).
    own_groups: dict[str, str] = {}

    @model_validator(mode="before")
    @classmethod
    def _earlier_items(cls, data: Any) -> Any:
        """Items written before one record served every alarm role: the failover alarm's `last_trigger`
        and the capacity alarms' bare times become entries of `handled_alarms`."""
        if not isinstance(data, dict):
            return data
        handled = {k: ({"at": v} if isinstance(v, str | datetime) else v) for k, v in (data.get("handled_alarms") or {}).items()}
        last = data.get("last_trigger")
        if isinstance(last, dict) and last.get("alarm") and last["alarm"] not in handled:
            handled[last["alarm"]] = {"at": last.get("at"), "outcome": last.get("outcome", "")}
        return {k: v for k, v in data.items() if k != "last_trigger"} | {"handled_alarms": handled}

    def handled(self, alarm: str, at: datetime) -> HandledTransition | None:
        """The record of this transition of `alarm`, if a decision was taken on it."""
        seen = self.handled_alarms.get(alarm)
        return seen if seen is not None and same_instant(seen.at, at) else None


@dataclass(frozen=True)
class Topology:
    """Everything one decision needs, read once."""

    cluster: ClusterConfig
    state: ClusterState
    instances: Mapping[str, Instance]
    now: datetime
    writer: tuple[Record, ...] = ()
    reader: tuple[Record, ...] = ()
    # Max ReplicaLag (seconds) over the lag window per replica; None = no data. Only read when deciding.
    lag: Mapping[str, float | None] = field(default_factory=dict)
    # Each of the cluster's failover alarms as CloudWatch shows it now. Only read when deciding.
    alarms: Mapping[str, AlarmStatus] = field(default_factory=dict)
    # The latest ReplicaLag of each replica (reader set, scale-in); None = not read for this decision.
    recent_lag: Mapping[str, LagReading] | None = None
    # Read while a workflow waits for its writer move to be verified.
    writer_check: WriterCheck | None = None
    # The SQL probe's latest reading of each replica (clusters with `probe`); read when deciding a failover.
    engine: Mapping[str, EngineReading] = field(default_factory=dict)
    # Regions of the cluster whose instances could not be read (region -> the error): unknown, not gone.
    unreadable: Mapping[str, str] = field(default_factory=dict)
    # Regions whose CloudWatch metrics (ReplicaLag) could not be read for this decision (region -> the error):
    # their replicas have no reading, and their verdicts say why. The primary's region never is: it raises.
    metrics_unread: Mapping[str, str] = field(default_factory=dict)
    # Instances outside the cluster that use a DB parameter group of its members (group -> their ids), from a listing
    # of the region: read for a fenced switchover's decision only (a fence on a shared group freezes them too).
    group_sharers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What SQL shows of a switchover's write fence while it holds and the target is not promoted.
    fence: FenceView | None = None
    # The proxy's target group (cluster.proxy); None: no proxy, or not read for this decision.
    proxy: ProxyView | None = None

    def engine_reading(self, instance: str) -> EngineReading | None:
        """The probe's reading of `instance` if it is recent enough to decide on (probe.max_age_seconds)."""
        reading = self.engine.get(instance)
        probe = self.cluster.probe
        if reading is None or probe is None or (self.now - reading.at).total_seconds() > probe.max_age_seconds:
            return None
        return reading

    @property
    def desired_multi_az(self) -> bool | None:
        choice = self.state.multi_az
        return choice.enabled if choice is not None else self.cluster.multi_az

    @property
    def primary(self) -> Instance | None:
        return self.instances.get(self.state.primary)

    def replicas_of(self, source: str) -> list[Instance]:
        return sorted((i for i in self.instances.values() if i.source == source), key=lambda i: i.id)
