"""What one probe sample found: raw per-instance checks, and the verdicts drawn from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# "down": the database did not answer (refused, timed out, closed, too many connections): its health.
# "auth"/"config": the probe's credentials or settings are wrong: says nothing about the database.
ErrorKind = Literal["down", "auth", "config"]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password, even in a traceback's locals
        return f"Credentials(username={self.username!r}, password=***)"


class EngineError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


@dataclass(frozen=True)
class PrimaryCheck:
    writable: bool
    # The newest WAL position (PostgreSQL, bytes) or binlog coordinate (MySQL, file << 32 | offset).
    position: float | None = None
    # PostgreSQL: bytes each replica (by application_name) has not replayed, from pg_stat_replication.
    replica_bytes: dict[str, float] = field(default_factory=dict)
    # MySQL/MariaDB: (binlog, size) in order, to count bytes across binlog files.
    binlogs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ReplicaCheck:
    # False: the instance is no longer (or not) a replica: replication is broken.
    replicating: bool
    broken_reason: str | None = None
    # Replayed (applied) and received positions, comparable among replicas of one source.
    position: float | None = None
    received: float | None = None
    # PostgreSQL: seconds since the last replayed commit (grows on an idle source).
    since_last_replay: float | None = None
    # MySQL/MariaDB: Seconds_Behind_Source (NULL -> None).
    seconds_behind: float | None = None
    receiving: bool = True  # WAL receiver streaming / IO thread running
    # PostgreSQL: seconds since the WAL receiver last heard from its source (None: no receiver).
    since_last_message: float | None = None
    applying: bool = True  # SQL thread running (PostgreSQL replays by itself)
    exec_file: str | None = None
    exec_offset: int | None = None
    note: str | None = None

    @property
    def caught_up_locally(self) -> bool:
        """Everything received is replayed: nothing is pending here, whatever the last commit's age
        says (on an idle PostgreSQL source that age grows without any lag)."""
        return self.position is not None and self.received is not None and self.position >= self.received


@dataclass(frozen=True)
class Outcome:
    """One instance's check: what it returned, or how it failed, and how long it took."""

    instance: str
    seconds: float
    primary: PrimaryCheck | None = None
    replica: ReplicaCheck | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def answered(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ReplicaVerdict:
    instance: str
    answered: bool
    broken: bool | None = None
    lag_seconds: float | None = None
    lag_bytes: float | None = None
    reason: str = ""


def witnessed(lost: int, replicas: int) -> bool:
    """Enough witnesses of a primary's loss: more than half of its replicas."""
    return lost * 2 > replicas


@dataclass(frozen=True)
class Sample:
    """One probe sample of a cluster. `primary_healthy` None means the probe withheld its judgement
    (it could reach nothing of the cluster, or its own credentials failed): no metric, no failover."""

    cluster: str
    at: datetime
    primary: str
    primary_healthy: bool | None
    primary_reason: str
    replicas: tuple[ReplicaVerdict, ...]
    probe_errors: tuple[str, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    # The replicas as witnesses of the primary: those that answered and lost it, those still receiving from it.
    lost_by: tuple[str, ...] = ()
    streaming: tuple[str, ...] = ()

    @property
    def confirmed_down(self) -> bool:
        """The primary does not answer; more than half of its replicas answer and lost it too; none still
        streams from it. A dead primary, not a cut between the probe and it (its replicas would still be
        streaming), nor one replica cut off with the probe (a minority of witnesses decides nothing)."""
        answered = any(o.instance == self.primary and o.answered for o in self.outcomes)
        return self.primary_healthy is False and not answered and witnessed(len(self.lost_by), len(self.replicas)) and not self.streaming
