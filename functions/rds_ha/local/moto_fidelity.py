"""Make moto's RDS behave like RDS where rds-ha depends on it.

One place, one patch per AWS behaviour, each naming what it reproduces. It serves the tests and
the demo (which runs the same moto in-process behind ThreadedMotoServer), so it lives in the
package rather than under tests/; Lambda never imports it.

Optional durations put operations on a clock (a SimClock in tests and the demo): an instance stays
`modifying` / `creating` until the clock passes its completion time, as on AWS.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol, cast

from moto.cloudwatch.models import Alarm as FakeAlarm
from moto.cloudwatch.models import CloudWatchBackend
from moto.dynamodb.models import DynamoDBBackend
from moto.rds.exceptions import DBInstanceAlreadyExists, DBInstanceNotFoundError, DBProxyNotFoundFault, RDSClientError
from moto.rds.models import DBInstance, DBProxyTarget, RDSBackend
from moto.rds.responses import RDSResponse
from moto.route53.exceptions import Route53ClientError
from moto.route53.models import Route53Backend
from moto.sns.exceptions import InvalidParameterValue as SnsInvalidParameterValue
from moto.sns.models import SNSBackend

from ..core.models import PROXY_REGISTRABLE


class _Clock(Protocol):
    def now(self) -> datetime: ...


class InvalidDBInstanceStateError(RDSClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidDBInstanceState", message)


class InvalidChangeBatchError(Route53ClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidChangeBatch", message)


class InvalidParameterValueError(RDSClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterValue", message)


class ProxyRefusalError(RDSClientError):
    """RegisterDBProxyTargets / DeregisterDBProxyTargets / DescribeDBProxyTargets refusals moto lacks."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


class InvalidParameterCombinationError(RDSClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterCombination", message)


# RDS User Guide, "Working with DB instance read replicas": up to 15 read replicas of one DB instance
# (MySQL, MariaDB, PostgreSQL) in a Region.
MAX_READ_REPLICAS = 15


class ThrottlingError(RDSClientError):
    def __init__(self) -> None:
        super().__init__("Throttling", "Rate exceeded")


class RateLimit:
    """AWS's API throttling as a token bucket, in real time: `burst` calls at once, then `per_second`.
    RDS documents a burst of 300 and 12 per second per account and region (refill)."""

    def __init__(self, burst: float, per_second: float) -> None:
        self.burst, self.per_second = burst, per_second
        self.tokens, self.at = burst, time.monotonic()
        self.allowed = self.throttled = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_second)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                self.allowed += 1
                return True
            self.throttled += 1
            return False


class Backing(Protocol):
    """Real servers behind moto's instances: told of each change RDS would make to an instance's server."""

    def primary(self, db: Any) -> None: ...

    def replica(self, db: Any, source: Any) -> None: ...

    def promoted(self, db: Any) -> None: ...

    def gone(self, instance_id: str) -> None: ...

    def address(self, instance_id: str) -> str | None: ...

    def parameters(self, db: Any, values: dict[str, str | None]) -> None: ...


@dataclass
class Fidelity:
    """Which durations to simulate (seconds; 0 = instant, as moto does) and on which clock."""

    clock: _Clock | None = None
    promote_seconds: float = 0
    create_replica_seconds: float = 0
    multi_az_seconds: float = 0
    reboot_seconds: float = 0
    # How long a registered proxy target stays REGISTERING before it is AVAILABLE (0: moto's one describe).
    proxy_register_seconds: float = 0
    # RDS's quota of DB parameter groups per region, default ones not counted ("DB parameter groups: 50", RDS User
    # Guide, "Quotas in Amazon RDS"; DescribeAccountAttributes' DBParameterGroups): CreateDBParameterGroup and
    # CopyDBParameterGroup past it are DBParameterGroupQuotaExceeded.
    parameter_group_quota: int = 50
    # RDS API throttling (None = none, as moto): every RDS call takes a token or is refused with Throttling.
    rds_rate: RateLimit | None = None
    # Real database servers behind the instances (the local lab, rds_ha.local.lab); None: records only.
    backing: Backing | None = None
    # Promotions that fail: instance id -> the status its promotion ends in ("failed", "incompatible-parameters");
    # it stays a replica. RDS documents no such outcome's timing; the tests use it to prove the give-back.
    failed_promotions: dict[str, str] = field(default_factory=dict)
    # Replicas whose promotion RDS accepted and has not finished (becoming writable), and those whose promotion
    # ended failed: what a test checks.
    promoting: set[str] = field(default_factory=set)
    promotions_failed: list[str] = field(default_factory=list)
    pending: list[tuple[datetime, Callable[[], None]]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def later(self, seconds: float, done: Callable[[], None]) -> None:
        if seconds <= 0 or self.clock is None:
            done()
            return
        with self.lock:
            self.pending.append((self.clock.now() + timedelta(seconds=seconds), done))

    def settle(self) -> None:
        """Finish every operation whose time has come."""
        if self.clock is None:
            return
        with self.lock:
            now = self.clock.now()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
        for _, done in sorted(due, key=lambda p: p[0]):
            done()


_active = Fidelity()
_originals: dict[str, Any] = {}


# The RDS backend's methods the layer replaces, with their replacements (the originals are kept in _originals).
def _rds_patches() -> dict[str, tuple[type, str, Any]]:
    return {
        "promote": (RDSBackend, "promote_read_replica", _promote_read_replica),
        "create": (RDSBackend, "create_db_instance_read_replica", _create_db_instance_read_replica),
        "describe": (RDSBackend, "describe_db_instances", _describe_db_instances),
        "modify": (RDSBackend, "modify_db_instance", _modify_db_instance),
        "create_instance": (RDSBackend, "create_db_instance", _create_db_instance),
        "delete_instance": (RDSBackend, "delete_db_instance", _delete_db_instance),
        "stop_instance": (RDSBackend, "stop_db_instance", _stop_db_instance),
        "modify_parameters": (RDSBackend, "modify_db_parameter_group", _modify_db_parameter_group),
        "reboot": (RDSBackend, "reboot_db_instance", _reboot_db_instance),
        "copy_parameters": (RDSBackend, "copy_db_parameter_group", _copy_db_parameter_group),
        "create_parameters": (RDSBackend, "create_db_parameter_group", _create_db_parameter_group),
        "delete_parameters": (RDSBackend, "delete_db_parameter_group", _delete_db_parameter_group),
        "address": (DBInstance, "address", property(_address)),
        "group_status": (DBInstance, "db_parameter_group_status_list", property(_parameter_group_status)),
    }


# AWS: each API call is applied atomically. moto's backends take no locks, so concurrent calls from threads
# race: two conditional DynamoDB puts can both "win" (our lease and idempotency records rely on them), and RDS
# lists are read while another call changes them. These RDS calls are serialised (and throttled when asked).
_ATOMIC_RDS = (
    "describe_db_instances",
    "create_db_instance_read_replica",
    "promote_read_replica",
    "delete_db_instance",
    "stop_db_instance",
    "add_tags_to_resource",
    "modify_db_instance",
    "create_db_instance",
    "modify_db_parameter_group",
    "copy_db_parameter_group",
    "create_db_parameter_group",
    "delete_db_parameter_group",
    "reboot_db_instance",
    "register_db_proxy_targets",
    "deregister_db_proxy_targets",
    "describe_db_proxy_targets",
    "describe_db_proxies",
    "describe_db_proxy_target_groups",
)


def install(fidelity: Fidelity | None = None) -> Fidelity:
    """Patch moto (once per process); `fidelity` replaces the durations and clock in force."""
    global _active
    _active = fidelity or Fidelity()
    if _originals:
        return _active
    patches = _rds_patches()
    _originals.update({key: getattr(cls, name) for key, (cls, name, _) in patches.items()})
    _install_route53_transactions()
    _install_alarm_times()
    _install_proxies()
    _install_sns_subjects()
    for cls, name, replacement in patches.values():
        setattr(cls, name, replacement)
    _serialize(DynamoDBBackend, ("put_item", "update_item", "delete_item"))
    _serialize(RDSBackend, throttled=True, names=_ATOMIC_RDS)
    return _active


def _promote_read_replica(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
    db_id = db_kwargs["db_instance_identifier"]
    # AWS: an unknown identifier is DBInstanceNotFound (moto raises a bare KeyError).
    if db_id not in self.databases:
        raise DBInstanceNotFoundError(db_id)
    db = self.databases[db_id]
    # AWS: promoting an instance that is not a read replica is refused.
    if not db.is_replica:
        raise InvalidDBInstanceStateError(f"DB instance {db_id} is not a read replica.")
    # AWS: promotion needs an available replica (not backing-up, not already modifying).
    if db.status != "available":
        raise InvalidDBInstanceStateError(f"DB instance {db_id} is not in available state (status {db.status}).")
    retention = db_kwargs.get("backup_retention_period")
    db.status = "modifying"
    _active.promoting.add(db_id)

    def done() -> None:
        _active.promoting.discard(db_id)
        failed = _active.failed_promotions.get(db_id)
        if failed is not None:
            db.status = failed
            _active.promotions_failed.append(db_id)
            return
        # AWS: the promoted instance is standalone; its source no longer lists it. (moto keeps both links.)
        source_id = db.source_db_instance_identifier
        if source_id:
            try:
                source = self.find_db_from_id(source_id)
                if db.db_instance_identifier in source.replicas:
                    source.remove_replica(db)
            except DBInstanceNotFoundError:
                pass
        db.source_db_instance_identifier = None
        db.is_replica = False
        if retention is not None:
            db.backup_retention_period = int(retention)
        db.status = "available"
        if _active.backing is not None:
            _active.backing.promoted(db)

    _active.later(_active.promote_seconds, done)
    return db


def _create_db_instance_read_replica(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
    db_id = db_kwargs["db_instance_identifier"]
    # AWS: an existing identifier is DBInstanceAlreadyExists (moto silently overwrites it).
    if db_id in self.databases:
        raise DBInstanceAlreadyExists()
    _refuse_replica(self, db_kwargs)
    replica = _originals["create"](self, db_kwargs)
    if _active.backing is not None:
        _active.backing.replica(replica, self.find_db_from_id(db_kwargs["source_db_instance_identifier"]))
    # moto copies the source's tags, status and deletion protection into the replica; AWS starts from
    # the request (CreateDBInstanceReadReplica's DeletionProtection defaults to false).
    replica.tags = list(db_kwargs.get("tags") or [])
    replica.deletion_protection = bool(db_kwargs.get("deletion_protection") or False)
    replica.status = "creating" if _active.create_replica_seconds > 0 and _active.clock else "available"

    def done() -> None:
        if replica.status == "creating":
            replica.status = "available"

    _active.later(_active.create_replica_seconds, done)
    return replica


def _modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
    # AWS: a Multi-AZ change keeps the instance `modifying` while the standby is built (or
    # removed); MultiAZ flips when it is done. moto flips it at once and stays `available`.
    db = self.find_db_from_id(db_instance_identifier) if db_instance_identifier in self.databases else None
    # AWS (RDS User Guide, "Stopping an Amazon RDS DB instance temporarily"): "You can't modify a stopped DB instance."
    if db is not None and db.status == "stopped":
        raise InvalidDBInstanceStateError(f"You can't modify a stopped DB instance ({db_instance_identifier}).")
    if db is not None and db.status not in {"available", "storage-optimization"} and "multi_az" in db_kwargs:
        raise InvalidDBInstanceStateError(f"DB instance {db_instance_identifier} is not in available state (status {db.status}).")
    wanted = db_kwargs.pop("multi_az", None)
    group = db_kwargs.get("db_parameter_group_name")
    result = _originals["modify"](self, db_instance_identifier, db_kwargs)
    # AWS (RDS User Guide, "Associating a DB parameter group with a DB instance"): "When you associate a new DB
    # parameter group with a DB instance, the modified static and dynamic parameters are applied only after the DB
    # instance is rebooted" (DBParameterGroupStatus: pending-reboot). moto shows every group in-sync.
    if db is not None and group:
        db.parameter_apply_status = "pending-reboot"  # type: ignore[attr-defined]
    if db is None or wanted is None or bool(wanted) == bool(db.multi_az):
        return result
    db.status = "modifying"

    def done() -> None:
        db.multi_az = bool(wanted)
        db.status = "available"

    _active.later(_active.multi_az_seconds, done)
    return result


def _restart_stopped(self: RDSBackend) -> None:
    """RDS starts an instance that has been stopped seven days (records only: the lab's servers stay down)."""
    if _active.clock is None or _active.backing is not None:
        return
    now = _active.clock.now()
    for db in list(self.databases.values()):
        stopped = getattr(db, "stopped_at", None)
        if db.status == "stopped" and stopped is not None and (now - stopped).total_seconds() >= AUTO_START_SECONDS:
            db.status, db.stopped_at = "available", None  # type: ignore[attr-defined]


def _reboot_db_instance(self: RDSBackend, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
    # AWS (RebootDBInstance; User Guide, "Rebooting a DB instance"): the instance must be available; "the DB instance
    # status is set to rebooting" meanwhile, and a parameter group pending reboot is applied. moto changes nothing.
    if db_instance_identifier not in self.databases:
        raise DBInstanceNotFoundError(db_instance_identifier)
    db = self.databases[db_instance_identifier]
    if db.status != "available":
        raise InvalidDBInstanceStateError(f"DB instance {db_instance_identifier} is not in available state (status {db.status}).")
    db.status = "rebooting"

    def done() -> None:
        db.status = "available"
        db.parameter_apply_status = "in-sync"  # type: ignore[attr-defined]

    _active.later(_active.reboot_seconds, done)
    return db


# AWS (API reference, CopyDBParameterGroup, TargetDBParameterGroupIdentifier): "Must contain from 1 to 255 letters,
# numbers, or hyphens; First character must be a letter; Can't end with a hyphen or contain two consecutive hyphens".
_GROUP_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)$")


def _copy_db_parameter_group(self: RDSBackend, **params: Any) -> Any:
    target = str(params.get("target_db_parameter_group_identifier") or "")
    if not _GROUP_IDENTIFIER.match(target):
        raise InvalidParameterValueError(
            f"Invalid DB parameter group identifier {target!r}: 1-255 letters, numbers or hyphens, a letter first, no trailing or double hyphen."
        )
    _refuse_past_quota(self)
    return _originals["copy_parameters"](self, **params)


def _own_groups(self: RDSBackend) -> int:
    return sum(1 for name in self.db_parameter_groups if not name.startswith("default."))


def _refuse_past_quota(self: RDSBackend) -> None:
    # AWS: DBParameterGroupQuotaExceeded, "The request would result in the user exceeding the allowed number of DB
    # parameter groups" (CreateDBParameterGroup, CopyDBParameterGroup: Errors). moto has no quota.
    if _own_groups(self) >= _active.parameter_group_quota:
        raise RDSClientError(
            "DBParameterGroupQuotaExceeded", f"The request would exceed the allowed number of DB parameter groups ({_active.parameter_group_quota})."
        )


def _create_db_parameter_group(self: RDSBackend, db_parameter_group_kwargs: dict[str, Any]) -> Any:
    _refuse_past_quota(self)
    return _originals["create_parameters"](self, db_parameter_group_kwargs)


def _delete_db_parameter_group(self: RDSBackend, db_parameter_group_name: str) -> Any:
    # AWS (DeleteDBParameterGroup): "The DB parameter group to be deleted can't be associated with any DB
    # instances" (InvalidDBParameterGroupState: "The DB parameter group is in use"); "You can't delete a default
    # DB parameter group". moto deletes either.
    users = sorted(db.db_instance_identifier for db in self.databases.values() if db.db_parameter_group_name == db_parameter_group_name)
    if users or db_parameter_group_name.startswith("default."):
        what = f"in use by {', '.join(users)}" if users else "a default DB parameter group"
        raise RDSClientError("InvalidDBParameterGroupState", f"The DB parameter group {db_parameter_group_name} is {what} and cannot be deleted.")
    return _originals["delete_parameters"](self, db_parameter_group_name)


def _describe_account_attributes_response(self: RDSResponse) -> Any:
    """DescribeAccountAttributes (moto has none): the account's RDS quotas, as RDS lists them; here the two the
    fidelity layer models, DB parameter groups (default ones not counted) and DB instances."""
    from moto.core.responses import ActionResult

    backend = self.backend
    quotas = [
        {"AccountQuotaName": "DBParameterGroups", "Used": _own_groups(backend), "Max": _active.parameter_group_quota},
        {"AccountQuotaName": "DBInstances", "Used": len(backend.databases), "Max": 40},
    ]
    return ActionResult({"AccountQuotas": quotas})


def _install_sns_subjects() -> None:
    """AWS (API reference, Publish, Subject): "Subjects must be UTF-8 text with no line breaks or control characters,
    and less than 100 characters long." moto refuses only more than 100 (its issue 1503 reports AWS taking exactly 100:
    the documented bound is the one kept here, and the one rds-ha's notifier keeps)."""
    original = SNSBackend.publish
    _originals["sns.publish"] = original

    def publish(self: SNSBackend, message: str, *args: Any, **kwargs: Any) -> Any:
        subject = kwargs.get("subject")
        if subject is not None and (len(subject) >= 100 or any(ord(c) < 32 or ord(c) == 127 for c in subject)):
            raise SnsInvalidParameterValue("Subject must be less than 100 characters, with no line breaks or control characters")
        return original(self, message, *args, **kwargs)

    SNSBackend.publish = publish  # type: ignore[method-assign]


def _parameter_group_status(self: DBInstance) -> list[Any]:
    """DBParameterGroups as DescribeDBInstances shows them: each instance's own ParameterApplyStatus (moto sets
    in-sync on the shared group object)."""
    status = getattr(self, "parameter_apply_status", "in-sync")
    return [SimpleNamespace(DBParameterGroupName=g.name, ParameterApplyStatus=status) for g in self.db_parameter_groups()]


def _describe_db_instances(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
    _active.settle()
    _restart_stopped(self)
    return _originals["describe"](self, *args, **kwargs)


def _create_db_instance(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
    db = _originals["create_instance"](self, db_kwargs)
    if _active.backing is not None:
        _active.backing.primary(db)
    return db


def _delete_db_instance(
    self: RDSBackend,
    db_instance_identifier: str,
    final_db_snapshot_identifier: str | None = None,
    skip_final_snapshot: bool | None = False,
    delete_automated_backups: bool | None = True,
) -> Any:
    # DeleteDBInstance (API reference): SkipFinalSnapshot "If you don't enable this parameter, you must specify
    # the FinalDBSnapshotIdentifier parameter. When a DB instance is in a failure state and has a status of
    # failed, incompatible-restore, or incompatible-network, RDS can delete the instance only if you enable this
    # parameter. If you delete a read replica ..., you must enable this setting." FinalDBSnapshotIdentifier:
    # "If you enable this parameter and also enable SkipFinalShapshot, the command results in an error."
    # moto deletes a replica with a final snapshot, and snapshots a failed instance.
    db = self.databases.get(db_instance_identifier)
    if db is not None and not skip_final_snapshot:
        if db.is_replica:
            raise InvalidParameterCombinationError("FinalDBSnapshotIdentifier can not be specified when deleting a replica instance")
        if not final_db_snapshot_identifier:
            raise InvalidParameterCombinationError("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.")
        if db.status in {"failed", "incompatible-restore", "incompatible-network"}:
            raise InvalidParameterCombinationError(f"The DB instance {db_instance_identifier} is {db.status}: it can be deleted only with SkipFinalSnapshot.")
    if skip_final_snapshot and final_db_snapshot_identifier:
        raise InvalidParameterCombinationError("FinalDBSnapshotIdentifier can not be specified when SkipFinalSnapshot is enabled.")
    db = _originals["delete_instance"](self, db_instance_identifier, final_db_snapshot_identifier, skip_final_snapshot, delete_automated_backups)
    if _active.backing is not None:
        _active.backing.gone(db_instance_identifier)
    return db


# AWS (API reference, StopDBInstance): "The instance restarts automatically after 7 days."
AUTO_START_SECONDS = 7 * 24 * 3600


def _stop_db_instance(self: RDSBackend, db_instance_identifier: str, *args: Any, **kwargs: Any) -> Any:
    # AWS (RDS User Guide, "Stopping an Amazon RDS DB instance temporarily", limitations): a DB instance that has a read
    # replica, or that is a read replica, cannot be stopped. moto stops either.
    current = self.databases.get(db_instance_identifier)
    if current is not None and (current.is_replica or [r for r in current.replicas if r in self.databases or r.startswith("arn:")]):
        what = "is a read replica" if current.is_replica else "has read replicas"
        raise InvalidDBInstanceStateError(f"DB instance {db_instance_identifier} {what}: it cannot be stopped.")
    db = _originals["stop_instance"](self, db_instance_identifier, *args, **kwargs)
    db.stopped_at = _active.clock.now() if _active.clock is not None else datetime.now(UTC)
    if _active.backing is not None:
        _active.backing.gone(db_instance_identifier)
    return db


def _modify_db_parameter_group(self: RDSBackend, db_parameter_group_name: str, db_parameter_group_parameters: Any) -> Any:
    # AWS: "You can't change the parameter values of a default DB parameter group" (RDS User Guide, "Modifying
    # parameters in a DB parameter group"); moto answers DBParameterGroupNotFound for them.
    if db_parameter_group_name.startswith("default."):
        raise InvalidParameterValueError(f"The parameter group {db_parameter_group_name} is a default parameter group and cannot be modified.")
    params = list(db_parameter_group_parameters)
    group = _originals["modify_parameters"](self, db_parameter_group_name, params)
    # AWS: a dynamic parameter's change with ApplyMethod immediate reaches every instance of the group
    # without a reboot (ModifyDBParameterGroup). In the lab, the servers behind them.
    values = {p["ParameterName"]: p.get("ParameterValue") for p in params if p.get("ApplyMethod", "immediate") == "immediate"}
    if _active.backing is not None and values:
        for db in list(self.databases.values()):
            if db.db_parameter_group_name == db_parameter_group_name:
                _active.backing.parameters(db, values)
    return group


def _address(db: Any) -> str:
    """The instance's endpoint: its real server's address in the lab, moto's made-up name otherwise."""
    real = _active.backing.address(db.db_instance_identifier) if _active.backing is not None else None
    return real if real is not None else str(_originals["address"].fget(db))


def _refuse_replica(self: RDSBackend, db_kwargs: dict[str, Any]) -> None:
    """The refusals of CreateDBInstanceReadReplica that moto lacks."""
    source = self.find_db_from_id(db_kwargs["source_db_instance_identifier"])
    # AWS: the source needs automated backups, and must not be a replica being promoted.
    if not source.backup_retention_period:
        raise InvalidDBInstanceStateError(f"Automated backups are not enabled for {source.db_instance_identifier}.")
    if source.status not in {"available", "backing-up"}:
        raise InvalidDBInstanceStateError(f"Source {source.db_instance_identifier} is {source.status}.")
    # AWS (RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager", Limitations):
    # "Creating a read replica when the source DB ... manages credentials with Secrets Manager" is not
    # supported (all engines but SQL Server). moto creates it.
    if getattr(source, "manage_master_user_password", False):
        raise InvalidParameterValueError(
            f"The source DB instance {source.db_instance_identifier} manages its master user password with AWS Secrets Manager; "
            "read replicas of it are not supported."
        )
    # AWS: at most 15 read replicas of one source in a Region (see MAX_READ_REPLICAS). moto has no limit.
    # (The error code is not documented; InvalidDBInstanceState is what rds-ha treats as a refusal either way.)
    here = [r for r in source.replicas if not r.startswith("arn:")]  # moto lists cross-region replicas by ARN
    if len(here) >= MAX_READ_REPLICAS:
        raise InvalidDBInstanceStateError(
            f"DB instance {source.db_instance_identifier} already has {len(here)} read replicas, the most allowed ({MAX_READ_REPLICAS})."
        )
    # AWS (API reference, CreateDBInstanceReadReplica, DBSubnetGroupName): "If no DB subnet group is specified,
    # then the new DB instance isn't created in a VPC"; for a cross-Region replica the subnet group must be one
    # of the destination Region (a same-Region replica inherits its source's). A source in a VPC with a
    # cross-Region replica requested without one: refused here (there is no EC2-Classic to put it in).
    cross_region = source_region_of(db_kwargs["source_db_instance_identifier"], self.region_name) != self.region_name
    if cross_region and getattr(source, "db_subnet_group", None) is not None and not db_kwargs.get("db_subnet_group_name"):
        raise InvalidParameterCombinationError(
            f"The source DB instance {source.db_instance_identifier} is in a VPC: a cross-Region read replica needs DBSubnetGroupName "
            f"(a DB subnet group of {self.region_name})."
        )
    # AWS (API reference, CreateDBInstanceReadReplica, DBParameterGroupName): "Specifying a parameter group for this
    # operation is only supported for MySQL DB instances for cross-Region read replicas, for Multi-AZ DB cluster read
    # replica instances, for Db2 DB instances, and for Oracle DB instances. It isn't supported for MySQL DB instances
    # for same Region read replicas or for RDS Custom." moto takes it for any engine.
    engine = str(getattr(source, "engine", "") or "")
    allowed = engine.startswith(("oracle", "db2")) or (engine == "mysql" and cross_region)
    if db_kwargs.get("db_parameter_group_name") and not allowed:
        where = "a cross-Region" if cross_region else "a same-Region"
        raise InvalidParameterCombinationError(
            f"A DB parameter group cannot be specified for {where} {engine} read replica: RDS associates the source's group "
            "(ModifyDBInstance DBParameterGroupName associates another one afterwards)."
        )


def _install_route53_transactions() -> None:
    """AWS (Route 53 API reference, ChangeResourceRecordSets): a change batch is a transaction, validated
    as a whole and applied all or none; "To delete a resource record set, you must specify all the same
    values that you specified when you created it" (name, type, set identifier, TTL, weight, values), and a
    CREATE of a record set that exists fails. So DELETE of the value read + CREATE of the new one is a
    compare-and-swap that fails when the record moved. moto checks DELETE against its change journal only
    (not the current values), accepts a CREATE of an existing weighted set, and applies changes one by one."""
    original = Route53Backend.change_resource_record_sets
    _originals["route53.change"] = original

    def describe(key: tuple[str, Any, Any]) -> str:
        ident = f", identifier='{key[2]}'" if key[2] is not None else ""
        return f"[name='{key[0]}', type='{key[1]}'{ident}]"

    def values(rrs: Any) -> tuple[Any, ...]:
        if isinstance(rrs, dict):
            vals = sorted(r["Value"] if isinstance(r, dict) else r for r in rrs.get("ResourceRecords", []))
            ttl, weight = rrs.get("TTL"), rrs.get("Weight")
        else:
            vals, ttl, weight = sorted(rrs.records), rrs.ttl, rrs.weight
        return (tuple(vals), None if ttl is None else int(ttl), None if weight is None else int(weight))

    def change(self: Route53Backend, zoneid: str, change_list: list[dict[str, Any]]) -> None:
        zone = self.get_hosted_zone(zoneid)
        current: dict[tuple[str, Any, Any], Any] = {(rs.name.rstrip(".").lower() + ".", rs.type, rs.set_identifier): rs for rs in zone.rrsets}
        for item in change_list:
            rrs = item["ResourceRecordSet"]
            key = (rrs["Name"].rstrip(".").lower() + ".", rrs["Type"], rrs.get("SetIdentifier"))
            if item["Action"] == "DELETE":
                found = current.pop(key, None)
                if found is None:
                    raise InvalidChangeBatchError(f"[Tried to delete resource record set {describe(key)} but it was not found]")
                if values(found) != values(rrs):
                    raise InvalidChangeBatchError(
                        f"[Tried to delete resource record set {describe(key)} but the values provided do not match the current values]"
                    )
            elif item["Action"] == "CREATE":
                if key in current:
                    raise InvalidChangeBatchError(f"[Tried to create resource record set {describe(key)} but it already exists]")
                current[key] = rrs
            else:
                current[key] = rrs
        # Validated as AWS does: moto applies it (its own CREATE check, against its journal, misreads
        # weighted sets, so a CREATE found valid above goes in as the equivalent UPSERT).
        applied = [{**item, "Action": "UPSERT"} if item["Action"] == "CREATE" else item for item in change_list]
        with _route53_lock:
            return original(self, zoneid, applied)

    Route53Backend.change_resource_record_sets = change  # type: ignore[method-assign]


def _install_alarm_times() -> None:
    """AWS (CloudWatch API reference, MetricAlarm): DescribeAlarms returns StateTransitionedTimestamp, when the
    state last changed value, besides StateUpdatedTimestamp, which also moves on evaluation updates; and
    PutMetricAlarm on an existing alarm "completely overwrites the previous configuration" but leaves its
    state unchanged. moto has no StateTransitionedTimestamp, stamps states with the wall clock (not the
    simulated one), and resets a re-put alarm to OK."""
    update_state = FakeAlarm.update_state
    put_alarm = CloudWatchBackend.put_metric_alarm
    _originals.update({"alarm.update_state": update_state, "alarm.put": put_alarm})

    def stamp() -> datetime | None:
        return _active.clock.now() if _active.clock is not None else None

    def new_state(self: FakeAlarm, reason: str, reason_data: str, state_value: str) -> None:
        changed = state_value != self.state_value
        update_state(self, reason, reason_data, state_value)
        at = stamp()
        if at is not None:
            self.state_updated_timestamp = at
        if changed or not hasattr(self, "state_transitioned_timestamp"):
            self.state_transitioned_timestamp = self.state_updated_timestamp  # type: ignore[attr-defined]

    def put(self: CloudWatchBackend, name: str, *args: Any, **kwargs: Any) -> Any:
        before = self.alarms.get(name)
        alarm = put_alarm(self, name, *args, **kwargs)
        if before is not None:
            alarm.state_value, alarm.state_reason, alarm.state_reason_data = before.state_value, before.state_reason, before.state_reason_data
            alarm.state_updated_timestamp = before.state_updated_timestamp
            alarm.state_transitioned_timestamp = getattr(before, "state_transitioned_timestamp", before.state_updated_timestamp)  # type: ignore[attr-defined]
        else:
            alarm.state_updated_timestamp = stamp() or alarm.state_updated_timestamp
            alarm.state_transitioned_timestamp = alarm.state_updated_timestamp  # type: ignore[attr-defined]
        return alarm

    FakeAlarm.update_state = new_state  # type: ignore[method-assign]
    CloudWatchBackend.put_metric_alarm = put  # type: ignore[method-assign]


# -- RDS Proxy ---------------------------------------------------------------------------------------
# Statuses of an instance a proxy can connect to (any other: its target is UNAVAILABLE, UNREACHABLE).
_PROXY_REACHABLE = frozenset({"available", "backing-up", "modifying", "configuring-enhanced-monitoring", "configuring-log-exports"})


def _proxy_group(self: RDSBackend, proxy_name: str, group_name: str | None) -> Any:
    # AWS (RegisterDBProxyTargets, DeregisterDBProxyTargets, DescribeDBProxyTargets, Errors): an unknown proxy is
    # DBProxyNotFoundFault, an unknown target group DBProxyTargetGroupNotFoundFault (moto raises bare KeyErrors).
    proxy = self.db_proxies.get(proxy_name)
    if proxy is None:
        raise DBProxyNotFoundFault(proxy_name)
    group = proxy.proxy_target_groups.get(group_name or "default")
    if group is None:
        raise ProxyRefusalError("DBProxyTargetGroupNotFoundFault", f"The specified target group {group_name} isn't available for proxy {proxy_name}.")
    return group


def _register_db_proxy_targets(
    self: RDSBackend, db_proxy_name: str, target_group_name: str, db_cluster_identifiers: list[str], db_instance_identifiers: list[str]
) -> Any:
    group = _proxy_group(self, db_proxy_name, target_group_name)
    for ident in db_instance_identifiers:
        # AWS: DBInstanceNotFound for an unknown instance (moto registers any name); InvalidDBInstanceStateFault
        # when "the DB instance isn't in a valid state" (RegisterDBProxyTargets, Errors).
        db = self.databases.get(ident)
        if db is None:
            raise DBInstanceNotFoundError(ident)
        if db.status not in PROXY_REGISTRABLE:  # (RDS's own answer: models.PROXY_REGISTRABLE)
            state = db.status.upper().replace("-", "_")
            raise ProxyRefusalError(
                "InvalidDBInstanceState", f"DB Instance {ident} is in an unsupported state - {state}, needs to be in [AVAILABLE, MODIFYING, BACKING_UP]"
            )
        # AWS (AWS::RDS::DBProxyTargetGroup): "each target group is associated with exactly one RDS DB instance
        # or Aurora DB cluster"; DBProxyTargetAlreadyRegisteredFault: "The proxy is already associated with the
        # specified RDS DB instance". moto appends any number of targets.
        if group.targets or len(db_instance_identifiers) > 1:
            held = ", ".join(t.rds_resource_id for t in group.targets) or ident
            raise ProxyRefusalError(
                "DBProxyTargetAlreadyRegisteredFault", f"Target group {group.target_group_name} of proxy {db_proxy_name} is already associated with {held}."
            )
    targets = _originals["register_proxy"](self, db_proxy_name, target_group_name, db_cluster_identifiers, db_instance_identifiers)
    now = _active.clock.now() if _active.clock is not None else None
    for target in targets:
        db = self.databases[target.rds_resource_id]
        # moto leaves these empty (and every port 5432): AWS names the instance's endpoint, port and ARN.
        target.endpoint, target.port, target.target_arn, target.role = db.address, db.port, db.db_instance_arn, "READ_WRITE"
        target.registered_at = now
    return targets


def _deregister_db_proxy_targets(
    self: RDSBackend, db_proxy_name: str, target_group_name: str, db_cluster_identifiers: list[str], db_instance_identifiers: list[str]
) -> Any:
    group = _proxy_group(self, db_proxy_name, target_group_name)
    registered = {t.rds_resource_id for t in group.targets}
    for ident in db_instance_identifiers:
        # AWS (DeregisterDBProxyTargets, Errors): DBProxyTargetNotFoundFault, "The specified RDS DB instance or
        # Aurora DB cluster isn't available for a proxy" (moto answers success).
        if ident not in registered:
            raise ProxyRefusalError("DBProxyTargetNotFoundFault", f"{ident} is not a target of {db_proxy_name} ({group.target_group_name}).")
    return _originals["deregister_proxy"](self, db_proxy_name, target_group_name, db_cluster_identifiers, db_instance_identifiers)


def _describe_db_proxy_targets(self: RDSBackend, proxy_name: str, target_group_name: str | None = None) -> Any:
    return list(_proxy_group(self, proxy_name, target_group_name).targets)


def _describe_db_proxy_targets_response(self: RDSResponse) -> Any:
    """moto's response drops TargetGroupName (it always answers the default group)."""
    from moto.core.responses import ActionResult

    targets = self.backend.describe_db_proxy_targets(self.params.get("DBProxyName", ""), self.params.get("TargetGroupName"))  # type: ignore[call-arg]
    return ActionResult({"Targets": targets})


def _describe_db_proxy_target_groups(self: RDSBackend, proxy_name: str) -> Any:
    if proxy_name not in self.db_proxies:
        raise DBProxyNotFoundFault(proxy_name)
    return _originals["describe_proxy_groups"](self, proxy_name)


def _target_health(target: Any) -> dict[str, str]:
    """AWS: a new target is REGISTERING while the proxy connects, then AVAILABLE; UNAVAILABLE (UNREACHABLE) when
    its instance is not there to connect to (TargetHealth). moto flips REGISTERING after one describe and never
    looks at the instance."""
    db = target.backend.databases.get(target.rds_resource_id)
    if db is None or db.status not in _PROXY_REACHABLE:
        status = db.status if db is not None else "gone"
        return {"State": "UNAVAILABLE", "Reason": "UNREACHABLE", "Description": f"DB instance {target.rds_resource_id} is {status}"}
    at = getattr(target, "registered_at", None)
    if _active.clock is None or at is None:
        return {"State": "REGISTERING" if target.registering else "AVAILABLE"}
    ready = (_active.clock.now() - at).total_seconds() >= _active.proxy_register_seconds
    return {"State": "AVAILABLE" if ready else "REGISTERING"}


def _install_proxies() -> None:
    _originals.update(
        register_proxy=RDSBackend.register_db_proxy_targets,
        deregister_proxy=RDSBackend.deregister_db_proxy_targets,
        describe_proxy_groups=RDSBackend.describe_db_proxy_target_groups,
    )
    RDSBackend.register_db_proxy_targets = _register_db_proxy_targets  # type: ignore[method-assign]
    RDSBackend.deregister_db_proxy_targets = _deregister_db_proxy_targets  # type: ignore[method-assign]
    RDSBackend.describe_db_proxy_target_groups = _describe_db_proxy_target_groups  # type: ignore[method-assign]
    RDSBackend.describe_db_proxy_targets = _describe_db_proxy_targets  # type: ignore[method-assign]
    RDSResponse.describe_db_proxy_targets = _describe_db_proxy_targets_response  # type: ignore[method-assign]
    RDSResponse.describe_account_attributes = _describe_account_attributes_response  # type: ignore[attr-defined]
    DBProxyTarget.target_health = property(_target_health)  # type: ignore[assignment,method-assign]


def source_region_of(identifier: str, region: str) -> str:
    """The region of a source named by ARN (cross-region), else the request's."""
    return identifier.split(":")[3] if identifier.startswith("arn:") else region


_route53_lock = threading.RLock()
_depth = threading.local()


def _serialize(cls: type, names: tuple[str, ...], throttled: bool = False) -> None:
    lock = threading.RLock()
    for name in names:
        original = getattr(cls, name)
        _originals[f"{cls.__name__}.{name}"] = original

        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            # AWS refuses a call over the account's rate before doing anything (botocore retries it);
            # only the API call itself counts, not moto's own calls between backend methods.
            outermost = not getattr(_depth, "n", 0)
            if throttled and outermost and _active.rds_rate is not None and not _active.rds_rate.take():
                raise ThrottlingError()
            _depth.n = getattr(_depth, "n", 0) + 1
            try:
                with lock:
                    return _original(self, *args, **kwargs)
            finally:
                _depth.n -= 1

        setattr(cls, name, atomic)


def backend(region: str = "us-east-1", account: str = "123456789012") -> RDSBackend:
    from moto.rds.models import rds_backends

    return rds_backends[account][region]


def set_status(instance_id: str, status: str, region: str = "us-east-1") -> None:
    """Force an instance's status, e.g. 'failed' for a dead primary (moto never transitions)."""
    backend(region).databases[instance_id].status = status


def answer_test_dns(session: Any, account: str = "123456789012") -> None:
    """Route 53's TestDNSAnswer (moto answers 404): what the zone's authoritative servers would
    answer, from moto's records. Public zones only, as on AWS. Registered on a boto3 session (before
    its clients are made), it answers in-process whether the clients talk to moto in-process or to
    the demo's moto server in this process."""
    from html import escape  # escaping text for the XML answer (html.escape also escapes quotes)
    from urllib.parse import parse_qs, urlsplit

    from botocore.awsrequest import AWSResponse
    from moto.route53.models import route53_backends

    class Raw:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def stream(self, **_: Any) -> Any:
            yield self.data

    def answer(request: Any, **_: Any) -> Any:
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        zone_id = query.get("hostedzoneid", "").split("/")[-1]
        name, kind = query.get("recordname", "").rstrip(".").lower() + ".", query.get("recordtype", "")
        backend = route53_backends[account]["aws"]
        zone = backend.zones.get(zone_id)
        if zone is None or zone.private_zone:
            code = "NoSuchHostedZone" if zone is None else "InvalidInput"
            body = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(zone_id)}</Message></Error></ErrorResponse>"
            return AWSResponse(request.url, 400, cast(Any, {"content-type": "text/xml"}), Raw(body.encode()))
        values = [v for rs in zone.rrsets if rs.name.rstrip(".").lower() + "." == name and rs.type == kind for v in rs.records]
        data = "".join(f"<RecordDataEntry>{escape(v)}</RecordDataEntry>" for v in values)
        body = (
            '<TestDNSAnswerResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Nameserver>ns-1.awsdns-01.org</Nameserver><RecordName>{escape(name)}</RecordName><RecordType>{escape(kind)}</RecordType>"
            f"<RecordData>{data}</RecordData><ResponseCode>{'NOERROR' if values else 'NXDOMAIN'}</ResponseCode><Protocol>UDP</Protocol>"
            "</TestDNSAnswerResponse>"
        )
        return AWSResponse(request.url, 200, cast(Any, {"content-type": "text/xml"}), Raw(body.encode()))

    session.events.register("before-send.route53.TestDNSAnswer", answer)
