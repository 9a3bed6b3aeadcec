"""Ports: what the executor and the recorder need of AWS and of the state table, as `Protocol`s.

The adapters (`rds_ha.adapters`) implement them against boto3; tests may pass in-memory fakes where moto
adds nothing. One method per AWS call, each raising the errors of `core.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from .actions import RecordChange
from .models import ClusterState, Instance, ProxyTarget


class StatePort(Protocol):
    def get_state(self, cluster: str) -> ClusterState | None: ...

    def put_state(self, state: ClusterState) -> ClusterState:
        """Write the state if its version is still the stored one (StateConflictError otherwise)."""
        ...

    def add_history(self, cluster: str, at: datetime, kind: str, message: str, details: dict[str, Any] | None = None) -> None: ...


class RdsPort(Protocol):
    def describe(self, region: str, instance_id: str) -> Instance: ...

    def promote(self, region: str, instance_id: str, backup_retention: int) -> None: ...

    def create_replica(
        self,
        region: str,
        instance_id: str,
        source: str,
        az: str | None,
        instance_class: str | None,
        tags: Mapping[str, str],
        source_region: str | None = None,
        kms_key_id: str | None = None,
        subnet_group: str | None = None,
        security_group_ids: tuple[str, ...] = (),
    ) -> None: ...

    def set_parameter_group(self, region: str, instance_id: str, group: str) -> None: ...

    def describe_all(self, region: str) -> list[Instance]: ...

    def reboot(self, region: str, instance_id: str) -> None: ...

    def parameter(self, region: str, group: str, name: str) -> str: ...

    def set_parameter(self, region: str, group: str, name: str, value: str) -> None: ...

    def copy_parameter_group(self, region: str, source: str, target: str, description: str, tags: Mapping[str, str]) -> None: ...

    def delete_parameter_group(self, region: str, group: str) -> str: ...

    def delete_replica(self, region: str, instance_id: str) -> None: ...

    def delete_standalone(self, region: str, instance_id: str, final_snapshot: str | None) -> None: ...

    def modify_multi_az(self, region: str, instance_id: str, enabled: bool) -> None: ...

    def set_deletion_protection(self, region: str, instance_id: str, enabled: bool) -> None: ...

    def stop(self, region: str, instance_id: str) -> None: ...

    def add_tags(self, region: str, arn: str, tags: Mapping[str, str]) -> None: ...

    def remove_tags(self, region: str, arn: str, keys: tuple[str, ...]) -> None: ...


class ProxyPort(Protocol):
    """The cluster's RDS Proxy target group (one RDS instance per group); each call idempotent."""

    def targets(self, region: str, proxy: str, group: str) -> tuple[ProxyTarget, ...]: ...

    def register(self, region: str, proxy: str, group: str, instance: str) -> None: ...

    def deregister(self, region: str, proxy: str, group: str, instance: str) -> None: ...


class FencePort(Protocol):
    """SQL on a switchover's two instances (switchover.fence); positions are LSN bytes or binlog coordinates."""

    def frozen(self, instance: Instance) -> bool:
        """Does a new session on `instance` start read-only transactions (the fence is in effect)?"""
        ...

    def seal(self, instance: Instance) -> float:
        """End every other client session, wait until they are gone, and return the final write position."""
        ...

    def overrides(self, instance: Instance) -> tuple[str, ...]:
        """Settings that would let a session write through the fence (role or database settings of the parameter)."""
        ...

    def unblock(self, instance: Instance) -> int:
        """End the sessions whose running statements hold the fence's parameter back (MySQL/MariaDB: `read_only`
        waits for them); how many were ended."""
        ...

    def replayed(self, instance: Instance) -> float | None:
        """How far the replica `instance` has replayed (None: it is not replicating)."""
        ...


class DnsPort(Protocol):
    def change(self, zone_id: str, changes: tuple[RecordChange, ...], comment: str) -> str:
        """Submit one atomic batch; the change id."""
        ...


class AlarmPort(Protocol):
    def retarget_alarm(self, region: str, name: str, old: str, new: str) -> bool:
        """Point the alarm's instance dimension from `old` to `new`; False if it did not watch `old`."""
        ...


class NotifyPort(Protocol):
    def publish(self, topic_arn: str, subject: str, message: dict[str, Any]) -> None: ...


class HookPort(Protocol):
    def ask(self, arn: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def tell(self, arn: str, payload: dict[str, Any]) -> None: ...

    def exists(self, arn: str) -> bool: ...
