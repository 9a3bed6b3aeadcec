"""Hand-built topologies for planner tests (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rds_ha.core.config import ClusterConfig
from rds_ha.core.models import AlarmStatus, ClusterState, Instance, Record, Topology, Workflow
from rds_ha.core.planner import FailoverRequest

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def cluster(**failover: Any) -> ClusterConfig:
    return ClusterConfig.model_validate(
        {
            "name": "orders",
            "region": "us-east-1",
            "primary": "db",
            "replicas": {"min": 2, "max": 4},
            "dns": {"zone_id": "Z1", "writer": "w.example", "reader": "r.example", "ttl": 5},
            "failover": {"max_lag_seconds": 30, "cooldown_seconds": 600, **failover},
            "alarms": {"failover": ["down"]},
        }
    )


def inst(iid: str, source: str | None = None, status: str = "available", az: str = "us-east-1a", **kw: Any) -> Instance:
    """An instance of the cluster `orders` (tagged as its member, as `rds-ha apply` makes sure)."""
    kw["tags"] = {"rds-ha:cluster": "orders", **kw.get("tags", {})}
    return Instance(
        id=iid,
        status=status,
        region=kw.pop("region", "us-east-1"),
        az=az,
        endpoint=f"{iid}.rds",
        source=source,
        backup_retention=kw.pop("backup_retention", 7 if source is None else 0),
        arn=f"arn:aws:rds:us-east-1:1:db:{iid}",
        **kw,
    )


def topo(
    *instances: Instance,
    lag: dict[str, float | None] | None = None,
    state: ClusterState | None = None,
    cfg: ClusterConfig | None = None,
    alarm: str = "ALARM",
    writer: str | None = "db.rds",
    reader: tuple[Record, ...] = (),
) -> Topology:
    cfg = cfg or cluster()
    return Topology(
        cluster=cfg,
        state=state or ClusterState(cluster="orders", primary="db"),
        instances={i.id: i for i in instances},
        now=NOW,
        writer=(Record("w.example", writer, 5),) if writer else (),
        reader=reader,
        lag=lag or {},
        alarms={"down": AlarmStatus("down", alarm, NOW)},
    )


def request(**kw: Any) -> FailoverRequest:
    base: dict[str, Any] = {
        "trigger": "alarm down -> ALARM (eventbridge)",
        "failure_time": NOW,
        "workflow_id": "abc123",
        "alarm_name": "down",
        "alarm_instance": "db",
    }
    base.update(kw)
    return FailoverRequest(**base)


def workflow(**kw: Any) -> Workflow:
    base: dict[str, Any] = {
        "id": "abc123",
        "trigger": "t",
        "started_at": NOW,
        "failure_time": NOW,
        "old_primary": "db",
        "new_primary": "r2",
        "orphans": ("r1",),
        # The alarms were pointed at the new primary already (test_the_failover_alarms_follow_the_new_primary_once plans it).
        "alarms_moved_at": NOW,
    }
    base.update(kw)
    return Workflow(**base)
