"""What would fail later, said beforehand (`rds-ha check` and `apply`): each a sentence, none a refusal.

- A write fence (switchover.fence) on a parameter group without the cluster tag: the Lambdas' IAM lifts a fence
  only on groups tagged rds-ha:cluster, so a fence a crashed CLI run left would stay until a human lifts it.
- The DB parameter group quota nearly used (each replica rds-ha creates under a fence adds one group).
- The SQL probe's direct path not getting through (its Invoke DryRun of FailoverFunction refused, as it is in a
  VPC without a Lambda endpoint): detection falls back to the alarm path's minutes.
"""

from __future__ import annotations

from datetime import timedelta

from .. import TAG_CLUSTER
from ..core.config import ClusterConfig
from ..core.errors import AwsError
from ..core.models import Instance
from ..observability import logger
from .deps import Deps

# How far back `check` looks for the probe's DirectPathReachable (it publishes one each minute).
DIRECT_PATH_LOOKBACK = timedelta(minutes=10)


def warnings(deps: Deps, cfg: ClusterConfig, primary: Instance | None) -> list[str]:
    out = []
    if cfg.switchover.fence is not None and primary is not None:
        out += _fence_group(deps, cfg, primary) + _group_quota(deps, cfg, primary.region)
    if cfg.probe is not None and cfg.probe.direct_failover:
        out += _direct_path(deps, cfg, primary.region if primary is not None else cfg.region)
    return out


def _fence_group(deps: Deps, cfg: ClusterConfig, primary: Instance) -> list[str]:
    group = primary.parameter_group
    if not group or group.startswith("default.") or not primary.arn:
        return []  # (a switchover refuses a default group itself)
    arn = primary.arn.replace(":db:", ":pg:").rsplit(":", 1)[0] + f":{group}"
    try:
        tags = deps.rds.tags(primary.region, arn)
    except AwsError as exc:
        return [f"the tags of parameter group {group} not read ({exc})"]
    if tags.get(TAG_CLUSTER) == cfg.name:
        return []
    return [
        f"parameter group {group} (the primary's, which switchover.fence freezes) lacks the tag {TAG_CLUSTER}={cfg.name}: "
        "the Lambdas may lift a fence only on a tagged group, so one a crashed run leaves stays until a human lifts it"
    ]


def _group_quota(deps: Deps, cfg: ClusterConfig, region: str) -> list[str]:
    try:
        quota = deps.rds.quota(region, "DBParameterGroups")
    except AwsError as exc:
        logger.warning(f"{cfg.name}: the DB parameter group quota not read: {exc}")
        return [f"the DB parameter group quota of {region} not read ({exc})"]
    if quota is None:
        return []
    used, limit = quota
    left, need = limit - used, cfg.replicas.max
    if left >= need:
        return []
    return [
        f"{region} has {used} of its {limit} DB parameter groups: {left} left, and under switchover.fence each replica rds-ha "
        f"creates needs one (replicas.max {need}); RDS refuses replicas past the quota (raise it in Service Quotas)"
    ]


def _direct_path(deps: Deps, cfg: ClusterConfig, region: str) -> list[str]:
    now = deps.clock.now()
    try:
        reachable = deps.cloudwatch.direct_path(region, cfg.name, now - DIRECT_PATH_LOOKBACK, now)
    except AwsError as exc:
        return [f"the probe's DirectPathReachable not read ({exc})"]
    if reachable is not False:
        return []
    return [
        "the SQL probe cannot invoke FailoverFunction (its Invoke DryRun is refused): confirmed verdicts do not get through and "
        "detection falls back to the alarm path; the probe's subnets need a Lambda VPC endpoint (com.amazonaws."
        f"{region}.lambda) or a NAT"
    ]
