"""Actions the planner returns and the executor performs. Each carries the reason it was chosen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .models import Record, Workflow


@dataclass(frozen=True)
class Action:
    reason: str

    @property
    def mutates(self) -> bool:
        return True

    @property
    def critical(self) -> bool:
        """On the path to a writable primary: when it fails, later steps of the plan wait."""
        return True

    @property
    def paged(self) -> bool:
        """A failure of it is notified even when it is transient (clients wait on it)."""
        return False

    def describe(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Wait(Action):
    """Nothing to do until AWS finishes something; the reason says what."""

    @property
    def mutates(self) -> bool:
        return False

    def describe(self) -> str:
        return "wait"


@dataclass(frozen=True)
class Fence(Action):
    instance: str = ""

    @property
    def critical(self) -> bool:
        return False  # the tag is a marker; the writer record is what keeps writes off the old primary

    def describe(self) -> str:
        return f"fence {self.instance} (tag it fenced; it leaves every record)"


@dataclass(frozen=True)
class Unfence(Action):
    """Give the fence tag back: the workflow that fenced the old primary ended with no new primary (its promotion
    failed), and the old primary is the cluster's primary still."""

    instance: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"give {self.instance} back its primary role (remove the fence tag; it serves again)"


@dataclass(frozen=True)
class FenceWrites(Action):
    """Make the old primary read-only through its own DB parameter group (dynamic: no reboot). `again`: the
    fence is recorded already and someone put the parameter back since (a Terraform re-apply): set it again."""

    instance: str = ""
    group: str = ""
    parameter: str = ""
    again: bool = False
    # An unplanned failover's freeze of the old primary, issued after the promotion and never holding it up: a
    # primary still alive stops taking the writes the promoted replica will never have; a dead one's never applies.
    unplanned: bool = False

    @property
    def critical(self) -> bool:
        return not self.unplanned

    def describe(self) -> str:
        return f"freeze writes on {self.instance} {'again ' if self.again else ''}({self.parameter}=1 in its parameter group {self.group})"


@dataclass(frozen=True)
class SealWrites(Action):
    """The fence is in effect: end the sessions still inside a transaction and read the final write position."""

    instance: str = ""

    def describe(self) -> str:
        return f"end {self.instance}'s open transactions and read its final write position"


@dataclass(frozen=True)
class UnblockFence(Action):
    """MySQL/MariaDB: `read_only` has not taken effect, held back by statements that were running when RDS applied it
    (new writes queue behind it meanwhile): end the sessions inside a transaction (the seal would end them anyway)."""

    instance: str = ""

    def describe(self) -> str:
        return f"end the transactions on {self.instance} that hold its read_only back"


@dataclass(frozen=True)
class LiftFence(Action):
    """Put the old primary's parameter back: it takes writes again (a switchover that did not promote)."""

    instance: str = ""

    def describe(self) -> str:
        return f"lift the write fence on {self.instance} (its parameter group's value restored)"


@dataclass(frozen=True)
class Promote(Action):
    instance: str = ""
    backup_retention: int = 1

    def describe(self) -> str:
        return f"promote {self.instance} (BackupRetentionPeriod={self.backup_retention})"


@dataclass(frozen=True)
class RecordChange:
    action: Literal["CREATE", "DELETE", "UPSERT"]
    record: Record


@dataclass(frozen=True)
class ChangeRecords(Action):
    zone_id: str = ""
    changes: tuple[RecordChange, ...] = ()
    # "writer" or "reader": which name the batch is for (history and metrics).
    role: str = "reader"
    # The steps after it depend on it (a replica is deleted only once no record names it).
    blocking: bool = False

    @property
    def critical(self) -> bool:
        return self.role == "writer" or self.blocking

    def describe(self) -> str:
        parts = [f"{c.action} {c.record.name} -> {c.record.value}" + (f" [{c.record.set_identifier}]" if c.record.set_identifier else "") for c in self.changes]
        return f"change {self.role} DNS: " + "; ".join(parts)


@dataclass(frozen=True)
class MoveProxy(Action):
    """Keep the proxy's target group on the primary: deregister every other target first (a target group
    holds one RDS instance), then register `instance` (none: only the deregistration)."""

    proxy: str = ""
    target_group: str = "default"
    region: str = ""
    deregister: tuple[str, ...] = ()
    instance: str | None = None

    @property
    def critical(self) -> bool:
        return False  # recovery is not held by the proxy: the writer record moves whatever it answers

    @property
    def paged(self) -> bool:
        return True

    def describe(self) -> str:
        parts = [f"deregister {', '.join(self.deregister)}"] if self.deregister else []
        if self.instance:
            parts.append(f"register {self.instance}")
        return f"proxy {self.proxy} ({self.target_group}): " + ", then ".join(parts)


@dataclass(frozen=True)
class RecordPrimary(Action):
    instance: str = ""

    def describe(self) -> str:
        return f"record {self.instance} as the cluster's primary"


Scaling = Literal["scale_out", "scale_in"]


@dataclass(frozen=True)
class CreateReplica(Action):
    instance: str = ""
    source: str = ""
    az: str | None = None
    instance_class: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # Where the replica is created; a source in another region is given as its ARN.
    region: str = ""
    source_region: str = ""
    kms_key_id: str | None = None
    # Cross-region, a source in a VPC: the destination's DB subnet group and security groups.
    subnet_group: str | None = None
    security_group_ids: tuple[str, ...] = ()
    # Set when the replica is a scaling step: its cooldown starts before the call.
    scaling: Scaling | None = None
    # The source's DB parameter group, copied for the replica as its own (parameter_group_of) before it is created
    # and associated once it is available (OwnParameterGroup), so a write fence on one instance never reaches
    # another. None: the source's group stays its group.
    parameter_group_from: str | None = None

    def describe(self) -> str:
        where = self.az or (self.region if self.region != self.source_region else "")
        source = self.source.split(":db:")[-1]
        own = f", then its own parameter group (a copy of {self.parameter_group_from})" if self.parameter_group_from else ""
        return f"create replica {self.instance} of {source}" + (f" in {where}" if where else "") + own


@dataclass(frozen=True)
class OwnParameterGroup(Action):
    """Give a replica rds-ha created its own DB parameter group (a copy of the one it inherited from its source):
    associate it, then reboot the replica so that RDS applies it. A replica cannot be created with one (RDS takes
    DBParameterGroupName on CreateDBInstanceReadReplica only for MySQL cross-region, Db2 and Oracle replicas)."""

    instance: str = ""
    group: str = ""
    # The group it has now, copied as its own (associate); "" once associated (reboot).
    source_group: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        if self.source_group:
            return f"give {self.instance} its own parameter group {self.group} (a copy of {self.source_group}; applied at its reboot)"
        return f"reboot {self.instance} to apply its own parameter group {self.group}"


def parameter_group_of(instance: str) -> str:
    """The DB parameter group rds-ha gives a replica it creates (a copy of its source's)."""
    return f"{instance}{OWN_GROUP_SUFFIX}"


OWN_GROUP_SUFFIX = "-params"


@dataclass(frozen=True)
class DeleteParameterGroup(Action):
    """Delete a DB parameter group rds-ha made for an instance that is gone (RDS refuses one still associated
    with an instance: DeleteDBParameterGroup)."""

    group: str = ""
    instance: str = ""
    region: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"delete parameter group {self.group} (its instance {self.instance} is gone)"


@dataclass(frozen=True)
class DeleteInstance(Action):
    instance: str = ""
    what: str = "orphan replica"
    scaling: Scaling | None = None

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"delete {self.what} {self.instance}"


@dataclass(frozen=True)
class RetireInstance(Action):
    """Delete a fenced old primary: its final snapshot (and its automated backups) kept, so the writes only
    it acknowledged stay restorable. `snapshot` None: deleted without one (RDS's only way for a failed one)."""

    instance: str = ""
    snapshot: str | None = None

    def describe(self) -> str:
        kept = f"final snapshot {self.snapshot}" if self.snapshot else "no final snapshot"
        return f"retire fenced {self.instance} ({kept}, automated backups kept), then delete it"


@dataclass(frozen=True)
class ModifyMultiAz(Action):
    instance: str = ""
    enabled: bool = True

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"turn Multi-AZ {'on' if self.enabled else 'off'} for {self.instance} (ApplyImmediately)"


@dataclass(frozen=True)
class RecordHandled(Action):
    """Remember an alarm transition acted on, so a second delivery of it changes nothing."""

    alarm: str = ""
    at: datetime | None = None
    outcome: str = ""

    def describe(self) -> str:
        return f"record {self.alarm}'s transition as handled"


@dataclass(frozen=True)
class RetargetAlarms(Action):
    """Point the cluster's failover alarms that watch the old primary at the new one (same names and settings)."""

    alarms: tuple[str, ...] = ()
    old: str = ""
    new: str = ""

    @property
    def critical(self) -> bool:
        return False  # the writer does not wait for it; a failure is recorded and notified

    def describe(self) -> str:
        return f"point the failover alarms {', '.join(self.alarms)} at {self.new} where they watch {self.old}"


@dataclass(frozen=True)
class StopInstance(Action):
    instance: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"stop fenced old primary {self.instance}"


@dataclass(frozen=True)
class Protect(Action):
    """Deletion protection on a primary rds-ha made: a stale delete of it (planned while it was a replica) then
    fails at RDS. Set during the workflow best effort (it never waits), and again by reconcile until RDS has it."""

    instance: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"turn deletion protection on for the primary {self.instance}"


@dataclass(frozen=True)
class Overdue(Action):
    """Page once: the workflow is past failover.deadline_seconds, and it cannot end before its promoted target is
    writable or has failed for good (ending it could leave a second writer nobody follows)."""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return "page: past failover.deadline_seconds, the workflow goes on"


@dataclass(frozen=True)
class StartWorkflow(Action):
    workflow: Workflow | None = None

    def describe(self) -> str:
        assert self.workflow is not None
        return f"start {self.workflow.kind} {self.workflow.old_primary} -> {self.workflow.new_primary}"


@dataclass(frozen=True)
class VerifyWriter(Action):
    """Record that Route 53 has the writer move everywhere and answers the new primary."""

    instance: str = ""

    def describe(self) -> str:
        return f"verified: the writer record answers {self.instance}"


@dataclass(frozen=True)
class CompleteWorkflow(Action):
    def describe(self) -> str:
        return "complete failover"


@dataclass(frozen=True)
class AbortWorkflow(Action):
    def describe(self) -> str:
        return "abort failover (blocked)"


@dataclass(frozen=True)
class ReaderVerdict:
    instance: str
    serving: bool
    reason: str


@dataclass(frozen=True)
class CandidateVerdict:
    instance: str
    eligible: bool
    reason: str
    lag: float | None = None
    az: str | None = None
    # The SQL probe's bytes behind (the most data wins), and where it and CloudWatch disagree.
    lag_bytes: float | None = None
    disagreement: str | None = None


# What a decision or a run came to: the planner's outcomes, then the ones only a run reaches (the
# lease was busy or lost, AWS failed past its retries, a capacity change was made, a step is retried).
Outcome = Literal[
    "start", "blocked", "refused", "ignored", "duplicate", "deferred", "paused", "vetoed", "progress", "waiting", "complete", "steady",
    "busy", "skipped", "lease_lost", "error", "retrying", "done",
]  # fmt: skip


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    reason: str
    actions: tuple[Action, ...] = ()
    candidates: tuple[CandidateVerdict, ...] = ()
    chosen: str | None = None
    reader: tuple[ReaderVerdict, ...] = ()

    @property
    def mutating(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.mutates)
