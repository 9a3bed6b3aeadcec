"""RDS: describe instances once per sweep, and the few mutations a failover needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.models import Instance
from .aws import AwsClients, translate

_ERRORS = (ClientError, BotoCoreError)


def _source_id(source: str | None) -> str | None:
    if not source:
        return None
    # Cross-region sources are given as ARNs: arn:aws:rds:REGION:ACCOUNT:db:ID
    return source.split(":db:")[-1] if source.startswith("arn:") else source


def _ref(ref: str, region: str) -> tuple[str, str]:
    """(region, identifier) of an identifier or an ARN (arn:aws:rds:REGION:ACCOUNT:db:ID)."""
    if ref.startswith("arn:"):
        return ref.split(":")[3], ref.split(":db:")[-1]
    return region, ref


def to_instance(raw: Mapping[str, Any], region: str) -> Instance:
    endpoint = raw.get("Endpoint") or {}
    return Instance(
        id=raw["DBInstanceIdentifier"],
        status=raw.get("DBInstanceStatus", "unknown"),
        region=region,
        az=raw.get("AvailabilityZone"),
        engine=raw.get("Engine", ""),
        instance_class=raw.get("DBInstanceClass", ""),
        endpoint=endpoint.get("Address"),
        port=endpoint.get("Port"),
        source=_source_id(raw.get("ReadReplicaSourceDBInstanceIdentifier")),
        source_region=_ref(raw["ReadReplicaSourceDBInstanceIdentifier"], region)[0] if raw.get("ReadReplicaSourceDBInstanceIdentifier") else None,
        replicas=tuple(_ref(r, region) for r in raw.get("ReadReplicaDBInstanceIdentifiers", [])),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("TagList", [])},
        multi_az=bool(raw.get("MultiAZ", False)),
        backup_retention=int(raw.get("BackupRetentionPeriod", 0) or 0),
        deletion_protection=bool(raw.get("DeletionProtection", False)),
        arn=raw.get("DBInstanceArn", ""),
        created=raw.get("InstanceCreateTime"),
        engine_version=raw.get("EngineVersion", ""),
        managed_password=bool(raw.get("MasterUserSecret")),
        subnet_group=(raw.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        storage_encrypted=bool(raw.get("StorageEncrypted", False)),
        parameter_group=next((g.get("DBParameterGroupName") for g in raw.get("DBParameterGroups") or []), None),
        parameter_apply_status=next((g.get("ParameterApplyStatus") for g in raw.get("DBParameterGroups") or []), None),
    )


# A parameter's value when DescribeDBParameters gives none: RDS's engine defaults (MySQL/MariaDB read_only
# is {TrueIfReplica}: on for a read replica, off otherwise; PostgreSQL's default_transaction_read_only is off).
ENGINE_DEFAULTS = {"read_only": "{TrueIfReplica}", "default_transaction_read_only": "0"}


class RdsAdapter:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def _rds(self, region: str) -> Any:
        return self._clients.client("rds", region)

    def describe_all(self, region: str) -> list[Instance]:
        """Every DB instance in the region: one paginated call serves a whole decision."""
        try:
            out: list[Instance] = []
            for page in self._rds(region).get_paginator("describe_db_instances").paginate():
                out += [to_instance(raw, region) for raw in page.get("DBInstances", [])]
            return out
        except _ERRORS as exc:
            raise translate(exc, f"describe DB instances in {region}") from exc

    def describe_ids(self, region: str, instance_ids: Iterable[str]) -> list[Instance]:
        """The named instances (those that exist), 100 identifiers per call: cost independent of account size."""
        ids = sorted(set(instance_ids))
        out: list[Instance] = []
        try:
            for offset in range(0, len(ids), 100):
                chunk = ids[offset : offset + 100]
                for page in self._rds(region).get_paginator("describe_db_instances").paginate(Filters=[{"Name": "db-instance-id", "Values": chunk}]):
                    out += [to_instance(raw, region) for raw in page.get("DBInstances", [])]
        except _ERRORS as exc:
            raise translate(exc, f"describe {', '.join(ids[:5])}{'...' if len(ids) > 5 else ''} in {region}") from exc
        return out

    def describe(self, region: str, instance_id: str) -> Instance:
        try:
            raw = self._rds(region).describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
            return to_instance(raw, region)
        except _ERRORS as exc:
            raise translate(exc, f"describe {instance_id}") from exc

    def parameter(self, region: str, group: str, name: str) -> str:
        """A parameter's value in a DB parameter group (its engine default if the group gives none)."""
        try:
            pages = self._rds(region).get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group, Source="user")
            for page in pages:
                for param in page.get("Parameters", []):
                    if param.get("ParameterName") == name and param.get("ParameterValue") is not None:
                        return str(param["ParameterValue"])
        except _ERRORS as exc:
            raise translate(exc, f"read {name} of parameter group {group}") from exc
        return ENGINE_DEFAULTS.get(name, "0")

    def set_parameter(self, region: str, group: str, name: str, value: str) -> None:
        """Set a dynamic parameter, applied at once to every instance of the group (ApplyMethod immediate)."""
        try:
            self._rds(region).modify_db_parameter_group(
                DBParameterGroupName=group, Parameters=[{"ParameterName": name, "ParameterValue": value, "ApplyMethod": "immediate"}]
            )
        except _ERRORS as exc:
            raise translate(exc, f"set {name}={value} in parameter group {group}") from exc

    def copy_parameter_group(self, region: str, source: str, target: str, description: str, tags: Mapping[str, str]) -> None:
        """A copy of `source` named `target`, tagged; one that exists already (an earlier attempt's) is kept."""
        try:
            self._rds(region).copy_db_parameter_group(
                SourceDBParameterGroupIdentifier=source,
                TargetDBParameterGroupIdentifier=target,
                TargetDBParameterGroupDescription=description,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "DBParameterGroupAlreadyExists":
                raise translate(exc, f"copy parameter group {source} to {target}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"copy parameter group {source} to {target}") from exc

    def tags(self, region: str, arn: str) -> dict[str, str]:
        """The tags of an RDS resource (ListTagsForResource)."""
        try:
            listed = self._rds(region).list_tags_for_resource(ResourceName=arn)["TagList"]
        except _ERRORS as exc:
            raise translate(exc, f"list the tags of {arn}") from exc
        return {t["Key"]: t["Value"] for t in listed}

    def quota(self, region: str, name: str) -> tuple[int, int] | None:
        """An RDS account quota in `region` as (used, max) (DescribeAccountAttributes); None if RDS lists no such quota."""
        try:
            quotas = self._rds(region).describe_account_attributes()["AccountQuotas"]
        except _ERRORS as exc:
            raise translate(exc, "read the account's RDS quotas") from exc
        found = next((q for q in quotas if q.get("AccountQuotaName") == name), None)
        return (int(found["Used"]), int(found["Max"])) if found is not None else None

    def delete_parameter_group(self, region: str, group: str) -> str:
        """Delete a DB parameter group: "deleted", "gone" (there is none: a copy recorded but never made, or deleted
        already), or "in use" (RDS refuses a group an instance still uses: InvalidDBParameterGroupState). It is
        looked up first: IAM judges a delete by the group's tags, so a delete of one that does not exist is
        AccessDenied, not DBParameterGroupNotFound."""
        try:
            if not self._rds(region).describe_db_parameter_groups(DBParameterGroupName=group).get("DBParameterGroups"):
                return "gone"
            self._rds(region).delete_db_parameter_group(DBParameterGroupName=group)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "DBParameterGroupNotFound":
                return "gone"
            if code == "InvalidDBParameterGroupState":
                return "in use"
            raise translate(exc, f"delete parameter group {group}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"delete parameter group {group}") from exc
        return "deleted"

    def promote(self, region: str, instance_id: str, backup_retention: int) -> None:
        try:
            self._rds(region).promote_read_replica(DBInstanceIdentifier=instance_id, BackupRetentionPeriod=backup_retention)
        except _ERRORS as exc:
            raise translate(exc, f"promote {instance_id}") from exc

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
    ) -> None:
        """A read replica of `source` in `region`. Cross-region (`source_region` differs): the call is
        made in the destination region with the source's ARN, boto3 presigns the URL from SourceRegion,
        and an encrypted source needs a KMS key of the destination region. It takes its source's DB parameter
        group: RDS takes DBParameterGroupName here only for MySQL cross-region, Db2 and Oracle replicas
        (API reference): a group of its own is associated afterwards (`set_parameter_group`)."""
        kwargs: dict[str, Any] = {
            "DBInstanceIdentifier": instance_id,
            "SourceDBInstanceIdentifier": source,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            "CopyTagsToSnapshot": True,
        }
        if az:
            kwargs["AvailabilityZone"] = az
        if instance_class:
            kwargs["DBInstanceClass"] = instance_class
        if source_region and source_region != region:
            kwargs["SourceRegion"] = source_region
        if kms_key_id:
            kwargs["KmsKeyId"] = kms_key_id
        if subnet_group:
            kwargs["DBSubnetGroupName"] = subnet_group
        if security_group_ids:
            kwargs["VpcSecurityGroupIds"] = list(security_group_ids)
        try:
            self._rds(region).create_db_instance_read_replica(**kwargs)
        except _ERRORS as exc:
            raise translate(exc, f"create replica {instance_id} of {source}") from exc

    def delete_replica(self, region: str, instance_id: str) -> None:
        try:
            # A read replica has no final snapshot; its data lives on in its source.
            self._rds(region).delete_db_instance(DBInstanceIdentifier=instance_id, SkipFinalSnapshot=True)
        except _ERRORS as exc:
            raise translate(exc, f"delete {instance_id}") from exc

    def delete_standalone(self, region: str, instance_id: str, final_snapshot: str | None) -> None:
        """Delete a standalone instance: a final snapshot first (None: none), its automated backups kept
        (DeleteAutomatedBackups defaults to true: they would go with it)."""
        try:
            if final_snapshot is None:
                self._rds(region).delete_db_instance(DBInstanceIdentifier=instance_id, SkipFinalSnapshot=True, DeleteAutomatedBackups=False)
            else:
                self._rds(region).delete_db_instance(DBInstanceIdentifier=instance_id, FinalDBSnapshotIdentifier=final_snapshot, DeleteAutomatedBackups=False)
        except _ERRORS as exc:
            raise translate(exc, f"delete {instance_id}") from exc

    def modify_multi_az(self, region: str, instance_id: str, enabled: bool) -> None:
        try:
            # ApplyImmediately: otherwise RDS waits for the maintenance window.
            self._rds(region).modify_db_instance(DBInstanceIdentifier=instance_id, MultiAZ=enabled, ApplyImmediately=True)
        except _ERRORS as exc:
            raise translate(exc, f"set Multi-AZ {'on' if enabled else 'off'} on {instance_id}") from exc

    def set_parameter_group(self, region: str, instance_id: str, group: str) -> None:
        """Associate `group` with the instance (ApplyImmediately); RDS applies it at the instance's next reboot
        (ParameterApplyStatus pending-reboot until then)."""
        try:
            self._rds(region).modify_db_instance(DBInstanceIdentifier=instance_id, DBParameterGroupName=group, ApplyImmediately=True)
        except _ERRORS as exc:
            raise translate(exc, f"associate parameter group {group} with {instance_id}") from exc

    def reboot(self, region: str, instance_id: str) -> None:
        try:
            self._rds(region).reboot_db_instance(DBInstanceIdentifier=instance_id)
        except _ERRORS as exc:
            raise translate(exc, f"reboot {instance_id}") from exc

    def set_deletion_protection(self, region: str, instance_id: str, enabled: bool) -> None:
        try:
            # DeletionProtection takes effect at once (it is not a pending modification).
            self._rds(region).modify_db_instance(DBInstanceIdentifier=instance_id, DeletionProtection=enabled, ApplyImmediately=True)
        except _ERRORS as exc:
            raise translate(exc, f"set deletion protection on {instance_id}") from exc

    def stop(self, region: str, instance_id: str) -> None:
        try:
            self._rds(region).stop_db_instance(DBInstanceIdentifier=instance_id)
        except _ERRORS as exc:
            raise translate(exc, f"stop {instance_id}") from exc

    def add_tags(self, region: str, arn: str, tags: Mapping[str, str]) -> None:
        try:
            self._rds(region).add_tags_to_resource(ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        except _ERRORS as exc:
            raise translate(exc, f"tag {arn}") from exc

    def remove_tags(self, region: str, arn: str, keys: tuple[str, ...]) -> None:
        try:
            self._rds(region).remove_tags_from_resource(ResourceName=arn, TagKeys=list(keys))
        except _ERRORS as exc:
            raise translate(exc, f"untag {arn}") from exc
