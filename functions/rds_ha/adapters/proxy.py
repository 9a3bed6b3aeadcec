"""RDS Proxy: the cluster's proxy, its target group's targets, and moving the target group to the primary.

AWS (CloudFormation, AWS::RDS::DBProxyTargetGroup): "each target group is associated with exactly one RDS
DB instance or Aurora DB cluster", so a move is a deregistration of the old target, then a registration of
the new one. Each call is idempotent here: a target already registered or already gone counts as done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.models import ProxyTarget
from .aws import AwsClients, translate

_ERRORS = (ClientError, BotoCoreError)


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy as DescribeDBProxies and DescribeDBProxyTargetGroups show it (for `rds-ha apply`)."""

    name: str
    arn: str
    engine_family: str
    status: str
    # The named target group's ARN; None: the proxy has no target group of that name.
    target_group_arn: str | None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def to_target(raw: dict[str, Any]) -> ProxyTarget:
    health = raw.get("TargetHealth") or {}
    detail = " ".join(str(p) for p in (health.get("Reason"), health.get("Description")) if p)
    return ProxyTarget(instance=str(raw.get("RdsResourceId") or raw.get("TrackedClusterId") or ""), state=str(health.get("State") or "UNKNOWN"), reason=detail)


class ProxyAdapter:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    def _rds(self, region: str) -> Any:
        return self._clients.client("rds", region)

    def targets(self, region: str, proxy: str, group: str) -> tuple[ProxyTarget, ...]:
        """The target group's targets and their health (DescribeDBProxyTargets)."""
        try:
            pages = self._rds(region).get_paginator("describe_db_proxy_targets").paginate(DBProxyName=proxy, TargetGroupName=group)
            return tuple(to_target(raw) for page in pages for raw in page.get("Targets", []))
        except _ERRORS as exc:
            raise translate(exc, f"describe the targets of proxy {proxy} ({group})") from exc

    def _change(self, region: str, call: str, done_code: str, what: str, **params: Any) -> None:
        """A target change; `done_code` (already registered, already gone) counts as done: the next look at the
        targets says which instance is there."""
        try:
            getattr(self._rds(region), call)(**params)
        except ClientError as exc:
            if _code(exc) != done_code:
                raise translate(exc, what) from exc
        except BotoCoreError as exc:
            raise translate(exc, what) from exc

    def register(self, region: str, proxy: str, group: str, instance: str) -> None:
        what = f"register {instance} with proxy {proxy} ({group})"
        ids = {"DBProxyName": proxy, "TargetGroupName": group, "DBInstanceIdentifiers": [instance]}
        self._change(region, "register_db_proxy_targets", "DBProxyTargetAlreadyRegisteredFault", what, **ids)

    def deregister(self, region: str, proxy: str, group: str, instance: str) -> None:
        what = f"deregister {instance} from proxy {proxy} ({group})"
        ids = {"DBProxyName": proxy, "TargetGroupName": group, "DBInstanceIdentifiers": [instance]}
        self._change(region, "deregister_db_proxy_targets", "DBProxyTargetNotFoundFault", what, **ids)

    def describe(self, region: str, proxy: str, group: str) -> ProxyInfo | None:
        """The proxy and its target group's ARN; None if there is no such proxy."""
        rds = self._rds(region)
        try:
            raw = rds.describe_db_proxies(DBProxyName=proxy)["DBProxies"][0]
        except ClientError as exc:
            if _code(exc) == "DBProxyNotFoundFault":
                return None
            raise translate(exc, f"describe proxy {proxy}") from exc
        except BotoCoreError as exc:
            raise translate(exc, f"describe proxy {proxy}") from exc
        try:
            groups = rds.describe_db_proxy_target_groups(DBProxyName=proxy, TargetGroupName=group)["TargetGroups"]
        except ClientError as exc:
            if _code(exc) != "DBProxyTargetGroupNotFoundFault":
                raise translate(exc, f"describe target group {group} of proxy {proxy}") from exc
            groups = []
        except BotoCoreError as exc:
            raise translate(exc, f"describe target group {group} of proxy {proxy}") from exc
        arn = next((g.get("TargetGroupArn") for g in groups if g.get("TargetGroupName") == group), None)
        return ProxyInfo(proxy, str(raw.get("DBProxyArn", "")), str(raw.get("EngineFamily", "")), str(raw.get("Status", "")), arn)
