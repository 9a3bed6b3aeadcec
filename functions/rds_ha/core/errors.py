"""Errors rds-ha raises. Each is a one-line, user-facing message; CLI prints it, handlers log it."""

from __future__ import annotations


class RdsHaError(Exception):
    """Base of every error rds-ha raises on purpose."""


class ConfigError(RdsHaError):
    """The cluster configuration file or stored config is invalid."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        if len(problems) == 1:
            super().__init__(f"{source}: {problems[0]}")
        else:
            super().__init__(f"{source}: {len(problems)} problems:\n  " + "\n  ".join(problems))


class InvalidEventError(RdsHaError):
    """A Lambda event matches none of the shapes the function accepts, or misses fields."""


class UnknownRegionError(RdsHaError):
    """A region name AWS does not have (a typo), refused before any request is made to it."""


class ClusterNotFoundError(RdsHaError):
    """No applied configuration names this cluster."""


class LeaseBusyError(RdsHaError):
    """Another rds-ha run holds the cluster's lease."""


class LeaseLostError(RdsHaError):
    """This run's lease on the cluster expired or is another run's now: it must change nothing more."""


class StateConflictError(RdsHaError):
    """The cluster's state item changed under us (optimistic lock lost)."""


class AwsError(RdsHaError):
    """An AWS call failed in a way retries did not cure."""

    def __init__(self, message: str, code: str = "", transient: bool = False) -> None:
        self.code = code
        self.transient = transient
        super().__init__(message)


class InstanceStateError(AwsError):
    """RDS refused the call because of the instance's current status (InvalidDBInstanceState)."""

    def __init__(self, message: str, code: str = "InvalidDBInstanceState") -> None:
        super().__init__(message, code=code, transient=True)


class InstanceNotFoundError(AwsError):
    """RDS does not know the instance (DBInstanceNotFound)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DBInstanceNotFound", transient=False)


class InstanceAlreadyExistsError(AwsError):
    """An instance with that identifier exists already (DBInstanceAlreadyExists)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DBInstanceAlreadyExists", transient=False)


class StepRefusedError(AwsError):
    """rds-ha refused a destructive step itself: re-read right before it, the instance is not what the plan saw."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="RefusedByRdsHa", transient=False)


class RecordConflictError(AwsError):
    """Route 53 refused a change batch because a record it replaces is not as this run read it (a
    stale run lost a compare-and-swap): the next run reads the record again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="InvalidChangeBatch", transient=True)


class HookError(RdsHaError):
    """An operator's hook failed, or answered something that is not a decision."""


class HookTimeoutError(HookError):
    """An operator's hook did not answer in time."""


class StateTableMissingError(AwsError):
    """The state table does not exist (nothing applied yet, or another region, or a typo'd name)."""
