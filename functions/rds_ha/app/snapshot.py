"""Read one cluster's topology from AWS once: the input of every decision."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..adapters.cloudwatch import CloudWatchAdapter
from ..adapters.proxy import ProxyAdapter
from ..adapters.rds import RdsAdapter
from ..adapters.route53 import Route53Adapter
from ..adapters.state import StateTable
from ..core.clock import Clock
from ..core.config import ClusterConfig
from ..core.errors import AwsError
from ..core.models import AlarmStatus, ClusterState, EngineReading, FenceView, Instance, LagReading, ProxyView, Record, Topology, WriteFence, WriterCheck
from ..core.ports import FencePort
from ..observability import logger
from ..probe.model import EngineError

# The reader set and scale-in judge a replica by its latest ReplicaLag datapoint in this window.
RECENT_LAG_SECONDS = 300


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


@dataclass(frozen=True)
class Sweep:
    """Instances as DescribeDBInstances showed them, and the regions that could not be read (region ->
    the error): what is not seen there is unknown, not gone."""

    instances: list[Instance]
    unreadable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Known:
    """What a caller has read already, sparing the snapshot those calls: a DescribeDBInstances `sweep`,
    the failover `alarms` as just described (a failover decision), each replica's `recent_lag`, the
    writer and reader `records` by name from a listing of the zone (a reconcile sweep), and `hint`:
    instances seen in this cluster a moment ago (described in the first call)."""

    sweep: Sweep | None = None
    alarms: Mapping[str, AlarmStatus] | None = None
    recent_lag: Mapping[str, LagReading] | None = None
    records: Mapping[str, tuple[Record, ...]] | None = None
    hint: frozenset[str] = frozenset()


NOTHING_KNOWN = Known()


def by_region(instances: Iterable[Instance]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for inst in instances:
        out[inst.region].append(inst.id)
    return dict(out)


class Snapshotter:
    def __init__(
        self,
        rds: RdsAdapter,
        route53: Route53Adapter,
        cloudwatch: CloudWatchAdapter,
        table: StateTable,
        clock: Clock,
        fences: Callable[[ClusterConfig], FencePort | None] = lambda cfg: None,
        proxies: ProxyAdapter | None = None,
    ) -> None:
        self.rds, self.route53, self.cloudwatch, self.table, self.clock = rds, route53, cloudwatch, table, clock
        self.fences, self.proxies = fences, proxies

    def _describe_members(self, cfg: ClusterConfig, state: ClusterState, hint: Iterable[str] = ()) -> Sweep:
        """Filtered calls (known instances, then their replicas) per region of the cluster, not a listing
        of the account: in an AZ outage fifty clusters fail over at once under RDS's 12 requests/s quota.
        `hint` names instances seen in this cluster a moment ago: described in the first call, their
        replicas need no second one unless a new replica appeared. A region other than the primary's
        that cannot be read is left out and named (its trouble must not stop the decision)."""
        home = state.primary_region or cfg.region
        unreadable: dict[str, str] = {}

        def describe(region: str, ids: Iterable[str]) -> list[Instance]:
            if region in unreadable:
                return []
            try:
                return self.rds.describe_ids(region, ids)
            except AwsError as exc:
                if region == home:
                    raise
                unreadable[region] = str(exc)
                return []

        known = [i for region in cfg.regions for i in describe(region, known_ids(state) | set(hint))]
        have = {(i.region, i.id) for i in known}
        more: dict[str, set[str]] = defaultdict(set)
        for region, iid in {r for i in known for r in i.replicas} - have:
            if region in cfg.regions:
                more[region].add(iid)
        found = known + [i for region, ids in sorted(more.items()) for i in describe(region, ids)]
        return Sweep(found, unreadable)

    def state(self, cfg: ClusterConfig) -> ClusterState:
        return self.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)

    def recent_lag(self, replicas: Iterable[Instance], probed: Mapping[str, ClusterConfig] | None = None) -> dict[str, LagReading]:
        """Latest lag of each replica: one batched GetMetricData per region. Replicas of probed clusters
        (`probed`: instance id -> its cluster's config) are judged by the SQL probe's recent reading."""
        return self._recent(replicas, probed)[0]

    def recent_lag_by_region(
        self, replicas: Iterable[Instance], probed: Mapping[str, ClusterConfig], must: Iterable[str] = ()
    ) -> tuple[dict[str, LagReading], dict[str, str]]:
        """The same, region by region: the readings, and the regions whose metrics could not be read (region ->
        the error; a region in `must` raises instead)."""
        failed: dict[str, str] = {}
        return self._recent(replicas, probed, must=must, failed=failed)[0], failed

    def _recent(
        self,
        replicas: Iterable[Instance],
        probed: Mapping[str, ClusterConfig] | None,
        must: Iterable[str] | None = None,
        failed: dict[str, str] | None = None,
    ) -> tuple[dict[str, LagReading], dict[str, EngineReading]]:
        """A region in `must` (default: every region) whose metrics cannot be read raises; another is left
        out (its replicas have no reading) and added to `failed`."""
        end = self.clock.now()
        start = end - timedelta(seconds=RECENT_LAG_SECONDS)
        probes = {iid: (cfg.name, float(cfg.probe.max_age_seconds)) for iid, cfg in (probed or {}).items() if cfg.probe is not None}
        strict = None if must is None else set(must)
        lags: dict[str, LagReading] = {}
        engine: dict[str, EngineReading] = {}
        for region, ids in sorted(by_region(replicas).items()):
            try:
                found_lag, found_engine = self.cloudwatch.recent_lag(region, ids, start, end, probes)
            except AwsError as exc:
                if strict is None or region in strict:
                    raise
                logger.warning(f"no recent lag for {len(ids)} replica(s) in {region}: {exc}")
                if failed is not None:
                    failed[region] = str(exc)
                continue
            lags.update(found_lag)
            engine.update(found_engine)
        return lags, engine

    def _check_writer(self, cfg: ClusterConfig, change_id: str | None) -> WriterCheck:
        """Route 53's view of the writer move. Each check is a read about a step already taken: one that
        cannot run (throttled, refused) is noted and the planner falls back to what could be read."""
        status, answer, unchecked = None, None, []
        if change_id:
            try:
                status = self.route53.change_status(change_id)
            except AwsError as exc:
                unchecked.append(f"GetChange failed ({exc})")
        try:
            if not self.route53.is_private(cfg.dns.zone_id):
                answer = self.route53.answer(cfg.dns.zone_id, cfg.dns.writer)
        except AwsError as exc:
            unchecked.append(f"TestDNSAnswer failed ({exc})")
        return WriterCheck(status, answer, "; ".join(unchecked) or None, status_known=status is not None or not change_id)

    def _records(self, cfg: ClusterConfig, listed: Mapping[str, tuple[Record, ...]]) -> tuple[tuple[Record, ...], tuple[Record, ...]]:
        """The writer and reader record sets: from the zone's listing where the caller made one, else by name."""
        writer = listed[cfg.dns.writer] if cfg.dns.writer in listed else self.route53.records(cfg.dns.zone_id, cfg.dns.writer)
        reader: tuple[Record, ...] = ()
        if cfg.dns.reader:
            reader = listed[cfg.dns.reader] if cfg.dns.reader in listed else self.route53.records(cfg.dns.zone_id, cfg.dns.reader)
        return writer, reader

    def _failover_lag(
        self,
        cfg: ClusterConfig,
        state: ClusterState,
        replicas: list[Instance],
        failure_time: datetime,
        failed: dict[str, str],
    ) -> tuple[dict[str, float | None], dict[str, EngineReading]]:
        """Each replica of the primary's lag in the window before the failure (and the probe's readings).
        Another region's replicas without data are then not candidates (their region added to `failed`); the
        local ones still are."""
        lag: dict[str, float | None] = {}
        engine: dict[str, EngineReading] = {}
        start = failure_time - timedelta(seconds=cfg.failover.lag_window_seconds)
        probed = cfg.name if cfg.probe is not None else None
        home = state.primary_region or cfg.region
        for region, ids in sorted(by_region(i for i in replicas if i.source == state.primary).items()):
            try:
                found_lag, found_engine = self.cloudwatch.failover_metrics(region, probed, ids, start, failure_time, self.clock.now())
            except AwsError as exc:
                if region == home:
                    raise
                logger.warning(f"no lag for the replicas in {region}: {exc}")
                failed[region] = str(exc)
                continue
            lag.update(found_lag)
            engine.update(found_engine)
        return lag, engine

    def _writer_check(self, cfg: ClusterConfig, state: ClusterState, instances: Mapping[str, Instance], writer: tuple[Record, ...]) -> WriterCheck | None:
        """Route 53's view of a workflow's writer move, once it moved and until it is verified."""
        wf = state.workflow
        if wf is None or wf.verified_at is not None:
            return None
        new = instances.get(wf.new_primary)
        if wf.writer_moved_at is None and not (new is not None and any(r.value == new.endpoint for r in writer)):
            return None
        return self._check_writer(cfg, wf.writer_change_id)

    def read(
        self,
        cfg: ClusterConfig,
        failure_time: datetime | None = None,
        check_writer: bool = False,
        known: Known = NOTHING_KNOWN,
        proxy: bool | None = None,
        fence: bool = True,
    ) -> Topology:
        """`failure_time` asks for replica lag in the window before it (a failover decision); otherwise
        the latest lag of each replica is read (reader set, scaling) unless the caller knows it.
        `check_writer` asks Route 53 about a workflow's writer move until it is verified; `known` is what
        the caller read already (see Known); `proxy` asks for the proxy's targets (default: unless deciding a failover);
        `fence` for a fenced switchover's write fence (False: a look that never drives a workflow, as scaling's)."""
        state = self.state(cfg)
        sweep = known.sweep if known.sweep is not None else self._describe_members(cfg, state, known.hint)
        instances = members(cfg, state, sweep.instances)
        writer, reader = self._records(cfg, known.records or {})
        lag: dict[str, float | None] = {}
        engine: dict[str, EngineReading] = {}
        replicas = [i for i in instances.values() if i.is_replica]
        recent_lag = known.recent_lag
        unread: dict[str, str] = {}
        if failure_time is not None:
            lag, engine = self._failover_lag(cfg, state, replicas, failure_time, unread)
        elif recent_lag is None and replicas:
            # The same call brings the SQL probe's readings of a probed cluster (a switchover ranks by them).
            home = {state.primary_region or cfg.region}
            recent_lag, engine = self._recent(replicas, {i.id: cfg for i in replicas}, must=home, failed=unread)
        return Topology(
            cluster=cfg,
            state=state,
            instances=instances,
            now=self.clock.now(),
            writer=writer,
            reader=reader,
            lag=lag,
            alarms=dict(known.alarms or {}),
            recent_lag=dict(recent_lag) if recent_lag is not None else ({} if failure_time is None else None),
            writer_check=self._writer_check(cfg, state, instances, writer) if check_writer else None,
            engine=engine,
            unreadable=dict(sweep.unreadable),
            metrics_unread=unread,
            fence=self._fence_view(cfg, state, instances) if fence else None,
            proxy=self._proxy_view(cfg) if (failure_time is None if proxy is None else proxy) else None,
        )

    def _proxy_view(self, cfg: ClusterConfig) -> ProxyView | None:
        """The proxy's target group (cluster.proxy). Not read for a failover decision (its first look is
        the fastest path to a promotion); every look of the workflow after it reads it. A failure to read
        is the view's error: the proxy then moves nothing and holds nothing else up."""
        if cfg.proxy is None or self.proxies is None:
            return None
        try:
            return ProxyView(targets=self.proxies.targets(cfg.region, cfg.proxy.name, cfg.proxy.target_group))
        except AwsError as exc:
            logger.warning(f"proxy of {cfg.name}: {exc}")
            return ProxyView(error=str(exc))

    def _fence_view(self, cfg: ClusterConfig, state: ClusterState, instances: Mapping[str, Instance]) -> FenceView | None:
        """A fenced switchover's write fence until the writer moves. Its parameter as RDS holds it, from any
        process (someone may put it back). Before the promotion, over SQL too: before the fence, can this run
        reach both instances at all (a run that cannot must not freeze writes it could never seal); then, is the
        old primary read-only for a new session, and how far has the target replayed."""
        wf = state.workflow
        if wf is None or cfg.switchover.fence is None or wf.writer_moved_at is not None:
            return None
        if wf.fence is not None and not wf.fence.holding:
            return None
        if wf.kind != "switchover" and wf.fence is None:
            return None
        old, new = instances.get(wf.old_primary), instances.get(wf.new_primary)
        parameter = self._fence_parameter(cfg, wf.fence, old)
        if wf.promote_issued_at is not None or wf.kind != "switchover":  # (an unplanned failover's freeze: RDS's word only)
            return FenceView(parameter=parameter)
        port = self.fences(cfg)
        if port is None or old is None or new is None:
            return FenceView(error="the fence's SQL is not available here", parameter=parameter)
        try:
            if wf.fence is None:  # both ends must answer before writes are frozen
                return FenceView(frozen=port.frozen(old), replayed=port.replayed(new), overrides=port.overrides(old))
            if wf.fence.position is None:
                return FenceView(frozen=port.frozen(old), parameter=parameter)
            return FenceView(frozen=port.frozen(old), replayed=port.replayed(new), parameter=parameter)
        except (EngineError, AwsError) as exc:
            logger.warning(f"fence of {cfg.name}: {exc}")
            return FenceView(error=str(exc), parameter=parameter)

    def _fence_parameter(self, cfg: ClusterConfig, fence: WriteFence | None, old: Instance | None) -> str | None:
        """The fence parameter's value in the old primary's group (None: no fence yet, or it could not be read)."""
        if fence is None:
            return None
        try:
            return self.rds.parameter(old.region if old is not None else cfg.region, fence.group, fence.parameter)
        except AwsError as exc:
            logger.warning(f"fence of {cfg.name}: {exc}")
            return None
