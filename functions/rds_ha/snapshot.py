"""Read one cluster's topology from AWS once: the input of every decision."""

from __future__ import annotations

from datetime import datetime, timedelta

from .adapters.cloudwatch import CloudWatchAdapter
from .adapters.rds import RdsAdapter
from .adapters.route53 import Route53Adapter
from .adapters.state import StateTable
from .core.clock import Clock
from .core.config import ClusterConfig
from .core.models import ClusterState, Instance, Topology


def known_ids(state: ClusterState) -> set[str]:
    """The instances rds-ha's state names: the primary, the fenced, and the workflow's."""
    ids = {state.primary, *state.fenced}
    if state.workflow is not None:
        ids |= {state.workflow.old_primary, state.workflow.new_primary, *state.workflow.orphans}
    return ids


def members(cfg: ClusterConfig, state: ClusterState, instances: list[Instance]) -> dict[str, Instance]:
    """The cluster's instances: the known ones, their replicas, and anything tagged as ours."""
    by_id = {i.id: i for i in instances}
    wanted = known_ids(state) | {i.id for i in instances if i.cluster_tag == cfg.name}
    # One level of replicas of anything wanted: replicas of the primary and of the new primary.
    wanted |= {i.id for i in instances if i.source in wanted}
    return {iid: by_id[iid] for iid in sorted(wanted) if iid in by_id}


class Snapshotter:
    def __init__(self, rds: RdsAdapter, route53: Route53Adapter, cloudwatch: CloudWatchAdapter, table: StateTable, clock: Clock) -> None:
        self.rds, self.route53, self.cloudwatch, self.table, self.clock = rds, route53, cloudwatch, table, clock

    def _describe_members(self, cfg: ClusterConfig, state: ClusterState) -> list[Instance]:
        """Two filtered calls (known instances, then their replicas), not a listing of the account:
        in an AZ outage fifty clusters fail over at once under RDS's 12 requests/s account quota."""
        known = self.rds.describe_ids(cfg.region, known_ids(state))
        more = {r for i in known for r in i.replicas} - {i.id for i in known}
        return known + (self.rds.describe_ids(cfg.region, more) if more else [])

    def state(self, cfg: ClusterConfig) -> ClusterState:
        return self.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)

    def read(self, cfg: ClusterConfig, failure_time: datetime | None = None, alarms: bool = False, described: list[Instance] | None = None) -> Topology:
        """`failure_time` asks for replica lag in the window before it; `alarms` for alarm states;
        `described` is a DescribeDBInstances sweep of the region already made for this decision."""
        state = self.state(cfg)
        instances = members(cfg, state, described if described is not None else self._describe_members(cfg, state))
        writer = self.route53.records(cfg.dns.zone_id, cfg.dns.writer)
        reader = self.route53.records(cfg.dns.zone_id, cfg.dns.reader) if cfg.dns.reader else ()
        lag: dict[str, float | None] = {}
        if failure_time is not None:
            replicas = [i.id for i in instances.values() if i.source == state.primary]
            if replicas:
                start = failure_time - timedelta(seconds=cfg.failover.lag_window_seconds)
                lag = self.cloudwatch.replica_lag(cfg.region, replicas, start, failure_time)
        alarm_status = self.cloudwatch.alarms(cfg.region, cfg.alarms.failover) if alarms and cfg.alarms.failover else {}
        return Topology(
            cluster=cfg,
            state=state,
            instances=instances,
            now=self.clock.now(),
            writer=writer,
            reader=reader,
            lag=lag,
            alarms=alarm_status,
        )
