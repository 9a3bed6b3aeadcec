"""The state table (DynamoDB): cluster configs, cluster state, the lease, and history.

Items (pk / sk):
  CONFIG            / CLUSTER#<name>            the applied config of one cluster
  CLUSTER#<name>    / STATE                     ClusterState, guarded by `version`
  CLUSTER#<name>    / LEASE                     who acts on the cluster now, until when
  CLUSTER#<name>    / HISTORY#<iso time>#<id>   one decision or step, with its reason
  idempotency#...   / <hash>                    Powertools idempotency records (same table)
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ..core.config import ClusterConfig, cluster_from_json
from ..core.errors import AwsError, StateConflictError, StateTableMissingError
from ..core.models import ClusterState
from .aws import AwsClients, translate

_ERRORS = (ClientError, BotoCoreError)

# The table's key schema; tests check template.yaml declares exactly this.
KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
ATTRIBUTES = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
TTL_ATTRIBUTE = "expiration"

_ser = TypeSerializer()
_de = TypeDeserializer()


def _item(**values: Any) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _conditional_failed(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class StateTable:
    def __init__(self, clients: AwsClients, table_name: str, region: str | None = None) -> None:
        self._clients = clients
        self.name = table_name
        self._region = region

    @property
    def _ddb(self) -> Any:
        return self._clients.client("dynamodb", self._region)

    def _translate(self, exc: Exception, what: str) -> AwsError:
        """As `translate`, with a missing table said as what to do about it."""
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            region = self._region or self._clients.default_region
            return StateTableMissingError(
                f"no state table {self.name} in {region}: run rds-ha apply -f FILE to create it (or set RDS_HA_TABLE, --table, --region)",
                code="ResourceNotFoundException",
            )
        return translate(exc, what)

    # -- table ------------------------------------------------------------------------------
    def ensure(self) -> bool:
        """Create the table where it does not exist (the CLI's convenience). True if created."""
        try:
            self._ddb.describe_table(TableName=self.name)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise self._translate(exc, f"describe table {self.name}") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, f"describe table {self.name}") from exc
        try:
            self._ddb.create_table(TableName=self.name, KeySchema=KEY_SCHEMA, AttributeDefinitions=ATTRIBUTES, BillingMode="PAY_PER_REQUEST")
            self._ddb.get_waiter("table_exists").wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            self._ddb.update_time_to_live(TableName=self.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})
        except _ERRORS as exc:
            raise self._translate(exc, f"create table {self.name}") from exc
        return True

    # -- configs ----------------------------------------------------------------------------
    def put_config(self, cluster: ClusterConfig, applied_by: str, now: datetime) -> None:
        try:
            self._ddb.put_item(
                TableName=self.name,
                Item=_item(pk="CONFIG", sk=f"CLUSTER#{cluster.name}", config=cluster.model_dump_json(), applied_by=applied_by, applied_at=now.isoformat()),
            )
        except _ERRORS as exc:
            raise self._translate(exc, f"store config of {cluster.name}") from exc

    def configs(self) -> list[ClusterConfig]:
        out = []
        try:
            for page in self._ddb.get_paginator("query").paginate(
                TableName=self.name, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "CONFIG"}}
            ):
                for raw in page.get("Items", []):
                    item = _plain(raw)
                    out.append(cluster_from_json(item["config"], f"table {self.name} item {item['sk']}"))
        except _ERRORS as exc:
            raise self._translate(exc, f"read configs from {self.name}") from exc
        return out

    # -- state ------------------------------------------------------------------------------
    def get_state(self, cluster: str) -> ClusterState | None:
        try:
            raw = self._ddb.get_item(TableName=self.name, Key=_item(pk=f"CLUSTER#{cluster}", sk="STATE"), ConsistentRead=True).get("Item")
        except _ERRORS as exc:
            raise self._translate(exc, f"read state of {cluster}") from exc
        if not raw:
            return None
        return ClusterState.model_validate_json(_plain(raw)["state"])

    def put_state(self, state: ClusterState) -> ClusterState:
        """Write `state` if the stored version is still `state.version`; return it with version+1."""
        new = state.model_copy(update={"version": state.version + 1})
        try:
            self._ddb.put_item(
                TableName=self.name,
                Item=_item(pk=f"CLUSTER#{state.cluster}", sk="STATE", state=new.model_dump_json(), version=new.version),
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": {"N": str(state.version)}},
            )
        except _ERRORS as exc:
            if _conditional_failed(exc):
                raise StateConflictError(f"state of {state.cluster} changed concurrently (expected version {state.version})") from exc
            raise self._translate(exc, f"write state of {state.cluster}") from exc
        return new

    # -- lease ------------------------------------------------------------------------------
    def acquire_lease(self, cluster: str, owner: str, now: datetime, seconds: int) -> bool:
        """Patroni-style leader lock: a conditional write that only an expired or own lease allows."""
        try:
            self._ddb.put_item(
                TableName=self.name,
                Item=_item(pk=f"CLUSTER#{cluster}", sk="LEASE", owner=owner, expires_at=int(now.timestamp()) + seconds),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}, ":me": {"S": owner}},
            )
            return True
        except _ERRORS as exc:
            if _conditional_failed(exc):
                return False
            raise self._translate(exc, f"take lease on {cluster}") from exc

    def renew_lease(self, cluster: str, owner: str, now: datetime, seconds: int) -> bool:
        """Extend `owner`'s lease to now + seconds, only while it is still theirs and not expired."""
        try:
            self._ddb.update_item(
                TableName=self.name,
                Key=_item(pk=f"CLUSTER#{cluster}", sk="LEASE"),
                UpdateExpression="SET expires_at = :until",
                ConditionExpression="#o = :me AND expires_at >= :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":now": {"N": str(int(now.timestamp()))},
                    ":until": {"N": str(int(now.timestamp()) + seconds)},
                },
            )
            return True
        except _ERRORS as exc:
            if _conditional_failed(exc):
                return False
            raise self._translate(exc, f"renew lease on {cluster}") from exc

    def lease_holder(self, cluster: str) -> tuple[str, int] | None:
        """The lease's owner and its expiry (epoch seconds), expired or not; None when no run holds it."""
        try:
            raw = self._ddb.get_item(TableName=self.name, Key=_item(pk=f"CLUSTER#{cluster}", sk="LEASE"), ConsistentRead=True).get("Item")
        except _ERRORS as exc:
            raise self._translate(exc, f"read lease of {cluster}") from exc
        if not raw:
            return None
        item = _plain(raw)
        return str(item["owner"]), int(item["expires_at"])

    def release_lease(self, cluster: str, owner: str) -> bool:
        """Delete `owner`'s lease; False when it is not theirs (any more), which is left alone."""
        try:
            self._ddb.delete_item(
                TableName=self.name,
                Key=_item(pk=f"CLUSTER#{cluster}", sk="LEASE"),
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except _ERRORS as exc:
            if not _conditional_failed(exc):  # someone else's lease now: leave it alone
                raise self._translate(exc, f"release lease on {cluster}") from exc
            return False
        return True

    # -- history ----------------------------------------------------------------------------
    def add_history(self, cluster: str, at: datetime, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
        # Wall-clock nanoseconds, then a random suffix, order entries recorded at the same instant.
        sk = f"HISTORY#{at.isoformat()}#{time.time_ns():020d}#{uuid.uuid4().hex[:6]}"
        try:
            self._ddb.put_item(
                TableName=self.name,
                Item=_item(pk=f"CLUSTER#{cluster}", sk=sk, at=at.isoformat(), kind=kind, message=message, details=json.dumps(details or {}, default=str)),
            )
        except _ERRORS as exc:
            raise self._translate(exc, f"record history of {cluster}") from exc

    def history(self, cluster: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        try:
            resp = self._ddb.query(
                TableName=self.name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
                ExpressionAttributeValues={":pk": {"S": f"CLUSTER#{cluster}"}, ":h": {"S": "HISTORY#"}},
                ScanIndexForward=False,
                Limit=limit,
            )
        except _ERRORS as exc:
            raise self._translate(exc, f"read history of {cluster}") from exc
        out = []
        for raw in resp.get("Items", []):
            item = _plain(raw)
            out.append({"at": item["at"], "kind": item["kind"], "message": item["message"], "details": json.loads(item.get("details", "{}"))})
        return out
