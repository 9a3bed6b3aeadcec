"""Actions the planner returns and the executor performs. Each carries the reason it was chosen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
class Promote(Action):
    instance: str = ""
    backup_retention: int = 1

    def describe(self) -> str:
        return f"promote {self.instance} (BackupRetentionPeriod={self.backup_retention})"


@dataclass(frozen=True)
class RecordChange:
    action: Literal["UPSERT", "DELETE"]
    record: Record


@dataclass(frozen=True)
class ChangeRecords(Action):
    zone_id: str = ""
    changes: tuple[RecordChange, ...] = ()
    # "writer" or "reader": which name the batch is for (history and metrics).
    role: str = "reader"

    @property
    def critical(self) -> bool:
        return self.role == "writer"

    def describe(self) -> str:
        parts = [f"{c.action} {c.record.name} -> {c.record.value}" + (f" [{c.record.set_identifier}]" if c.record.set_identifier else "") for c in self.changes]
        return f"change {self.role} DNS: " + "; ".join(parts)


@dataclass(frozen=True)
class RecordPrimary(Action):
    instance: str = ""

    def describe(self) -> str:
        return f"record {self.instance} as the cluster's primary"


@dataclass(frozen=True)
class CreateReplica(Action):
    instance: str = ""
    source: str = ""
    az: str | None = None
    instance_class: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"create replica {self.instance} of {self.source}" + (f" in {self.az}" if self.az else "")


@dataclass(frozen=True)
class DeleteInstance(Action):
    instance: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"delete orphan replica {self.instance}"


@dataclass(frozen=True)
class StopInstance(Action):
    instance: str = ""

    @property
    def critical(self) -> bool:
        return False

    def describe(self) -> str:
        return f"stop fenced old primary {self.instance}"


@dataclass(frozen=True)
class StartWorkflow(Action):
    workflow: Workflow | None = None

    def describe(self) -> str:
        assert self.workflow is not None
        return f"start failover {self.workflow.old_primary} -> {self.workflow.new_primary}"


@dataclass(frozen=True)
class CompleteWorkflow(Action):
    def describe(self) -> str:
        return "complete failover"


@dataclass(frozen=True)
class AbortWorkflow(Action):
    def describe(self) -> str:
        return "abort failover (blocked)"


@dataclass(frozen=True)
class CandidateVerdict:
    instance: str
    eligible: bool
    reason: str
    lag: float | None = None
    az: str | None = None


Outcome = Literal["start", "blocked", "refused", "ignored", "duplicate", "deferred", "paused", "progress", "waiting", "complete", "steady"]


@dataclass(frozen=True)
class Plan:
    outcome: Outcome
    reason: str
    actions: tuple[Action, ...] = ()
    candidates: tuple[CandidateVerdict, ...] = ()
    chosen: str | None = None

    @property
    def mutating(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.mutates)
