"""Reconcile (every minute): decide on failover alarms whose delivery was lost, resume unfinished
workflows, keep DNS, replicas and Multi-AZ as they should be, judge readiness; cluster by cluster.

What every cluster needs is read once per run for all of them (one DescribeDBInstances sweep per
region, one batched GetMetricData per region, one DescribeAlarms per region, one listing per shared
hosted zone where that is cheaper); a region or zone that cannot be read stops no other cluster.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from ..core.alarms import firing, standing_failover
from ..core.config import ClusterConfig
from ..core.errors import AwsError, ClusterNotFoundError
from ..core.models import AlarmStatus, ClusterState, Instance, LagReading, Record, Topology
from ..core.readiness import Readiness, assess
from ..observability import logger
from .capacity import Capacity
from .deps import Deps
from .drive import Drive
from .failover import Failover, standing_request
from .readiness import ReadinessCheck
from .results import Result
from .runs import under_lease
from .snapshot import Known, Sweep, members

# Record sets per ListResourceRecordSets page when a reconcile lists a whole hosted zone.
ZONE_PAGE = 300


@dataclass(frozen=True)
class Fleet:
    """What one reconcile read for every cluster at once."""

    sweeps: Mapping[str, list[Instance]]
    lags: Mapping[str, dict[str, LagReading]]
    statuses: Mapping[str, AlarmStatus]
    alarms_read: frozenset[str]
    records: Mapping[str, dict[str, tuple[Record, ...]]]

    @property
    def in_alarm(self) -> dict[str, AlarmStatus]:
        return {n: a for n, a in self.statuses.items() if a.state == "ALARM"}


class Reconcile:
    def __init__(self, deps: Deps, drive: Drive, failover: Failover, capacity: Capacity, readiness: ReadinessCheck) -> None:
        self.d, self.drive, self.failover, self.capacity, self.readiness = deps, drive, failover, capacity, readiness

    def run(self, names: list[str] | None, deadline: datetime) -> list[Result]:
        configs = self._configs(names)
        fleet = self._read(configs)
        in_alarm = fleet.in_alarm
        results = []
        for cfg in configs:
            one = lambda cfg=cfg: self._one(cfg, fleet, in_alarm, deadline)  # noqa: E731
            results.append(under_lease(self.d, cfg, "reconcile", one, wait=0, busy="skipped"))
        return results

    def _configs(self, names: list[str] | None) -> list[ClusterConfig]:
        configs = self.d.table.configs()
        if not names:
            return configs
        known = {c.name for c in configs}
        for name in names:
            if name not in known:
                raise ClusterNotFoundError(f"no cluster named {name!r} is configured in table {self.d.table.name}")
        return [c for c in configs if c.name in names]

    def _one(self, cfg: ClusterConfig, fleet: Fleet, in_alarm: dict[str, AlarmStatus], deadline: datetime) -> Result:
        """One cluster, under its lease: a failover alarm still in ALARM first (a standing request, decided again
        every minute until answered), then the sync, then capacity alarms."""
        state = self.d.table.get_state(cfg.name) if any(n in in_alarm for n, _ in cfg.alarms.roles()) else None
        seen = firing(cfg, state, in_alarm) if state is not None and state.workflow is None else []
        standing = standing_failover(state, seen) if state is not None and seen else None
        decided = None
        if standing is not None:
            decided = self.failover.decide(cfg, standing_request(standing, in_alarm[standing.alarm]), deadline)
            if decided.steps:  # it started a workflow (a decision that starts one carries its steps): that run was this cluster's
                return decided
        stalled = decided.reason if decided is not None and decided.outcome not in {"ignored", "duplicate"} else None
        steady = self._sync(cfg, fleet, deadline, stalled)
        if decided is not None:
            steady = steady.after(decided.reason)
            if decided.outcome in {"blocked", "deferred", "paused", "vetoed", "refused"}:
                steady = replace(steady, outcome=decided.outcome)
        if steady.outcome == "steady":
            more = self.capacity.still_firing(cfg, seen, deadline)
            if more is not None:
                steady = steady.adding(more)
        return steady

    def _sync(self, cfg: ClusterConfig, fleet: Fleet, deadline: datetime, stalled: str | None = None) -> Result:
        """Drive the cluster from the fleet's reads, judging its readiness on the first look (`stalled`: why the
        failover its primary's alarm asks for is not happening)."""
        swept = Sweep([i for r in cfg.regions for i in fleet.sweeps[r]]) if all(r in fleet.sweeps for r in cfg.regions) else None
        alarms = {n: fleet.statuses[n] for n in cfg.alarms.failover if n in fleet.statuses} if cfg.region in fleet.alarms_read else None
        judged: list[Readiness] = []

        def ready(topo: Topology) -> None:
            judged.append(self.readiness.publish(assess(topo, alarms, stalled=stalled)))

        known = Known(sweep=swept, recent_lag=fleet.lags.get(cfg.name), records=fleet.records.get(cfg.dns.zone_id))
        result = self.drive.run(cfg, deadline, known=known, on_first=ready)
        return replace(result, readiness=judged[0]) if judged else result

    # -- what every cluster needs, read once ------------------------------------------------------
    def _read(self, configs: list[ClusterConfig]) -> Fleet:
        sweeps: dict[str, list[Instance]] = {}
        for region in sorted({r for c in configs for r in c.regions}):
            try:
                sweeps[region] = self.d.rds.describe_all(region)
            except AwsError as exc:  # its clusters read what they can themselves (the snapshot contains it)
                logger.error(f"reconcile: DBInstances of {region} not read: {exc}")
        lags = self._recent_lags(configs, sweeps)
        statuses, alarms_read = self._mapped_alarms(configs)
        return Fleet(sweeps, lags, statuses, frozenset(alarms_read), self._zone_records(configs))

    def _recent_lags(self, configs: list[ClusterConfig], sweeps: dict[str, list[Instance]]) -> dict[str, dict[str, LagReading]]:
        """Latest ReplicaLag of every cluster's replicas: one batched GetMetricData per region per sweep."""
        replicas: dict[str, list[Instance]] = {}
        for cfg in configs:
            # Members by tag and by the config's primary (no state read): what the snapshot finds misses nothing
            # important, as a replica without a reading is judged on its status and its place in the reader set.
            by_tag = members(cfg, ClusterState(cluster=cfg.name, primary=cfg.primary), [i for r in cfg.regions for i in sweeps.get(r, [])])
            replicas[cfg.name] = [i for i in by_tag.values() if i.is_replica]
        by_name = {cfg.name: cfg for cfg in configs}
        every = [i for found in replicas.values() for i in found]
        readings, failed = self.d.snapshots.recent_lag_by_region(every, {i.id: by_name[name] for name, found in replicas.items() for i in found})
        # A cluster with a replica in a region whose metrics could not be read reads them itself (and
        # reports that region's trouble as its own), rather than deciding as if those replicas had no data.
        return {
            name: {i.id: readings[i.id] for i in found if i.id in readings} for name, found in replicas.items() if not any(i.region in failed for i in found)
        }

    def _zone_records(self, configs: list[ClusterConfig]) -> dict[str, dict[str, tuple[Record, ...]]]:
        """Writer and reader record sets of every cluster, one listing per hosted zone where that is
        cheaper than reading them name by name (Route 53 throttles per account: 5 requests/s). A zone's
        size (GetHostedZone) says what its listing costs, so a large zone shared by few clusters is
        still read by name, and nothing costs more than before."""
        by_zone: dict[str, set[str]] = defaultdict(set)
        for cfg in configs:
            by_zone[cfg.dns.zone_id] |= {cfg.dns.writer, *([cfg.dns.reader] if cfg.dns.reader else [])}
        out: dict[str, dict[str, tuple[Record, ...]]] = {}
        for zone, names in by_zone.items():
            if len(names) < 3:  # one GetHostedZone and a page already cost as much as two reads by name
                continue
            try:
                pages = -(-self.d.route53.zone_size(zone) // ZONE_PAGE)
                if pages + 1 < len(names):
                    listed = self.d.route53.zone_cnames(zone, names, max_pages=pages + 1)
                    if listed is not None:
                        out[zone] = listed
            except AwsError as exc:  # the clusters read their records by name, as without a listing
                logger.warning(f"zone {zone} not listed: {exc}")
        return out

    def _mapped_alarms(self, configs: list[ClusterConfig]) -> tuple[dict[str, AlarmStatus], set[str]]:
        """Every mapped alarm as it is now (one DescribeAlarms per region and per 100 alarms), and the
        regions whose alarms were read."""
        out: dict[str, AlarmStatus] = {}
        read: set[str] = set()
        for region in sorted({c.region for c in configs}):
            names = [a for c in configs if c.region == region for a, _ in c.alarms.roles()]
            if not names:
                read.add(region)
                continue
            try:
                out.update(self.d.cloudwatch.alarms(region, names))
                read.add(region)
            except AwsError as exc:  # those clusters' alarms are looked at again next minute; the rest go on
                logger.error(f"reconcile: alarms of {region} not read: {exc}")
        return out, read
