"""Failover readiness: could the cluster fail over now, and would the failover complete? The judgement
is `core.readiness.assess`; this reads what it needs and publishes it (FailoverReady, EligibleCandidates)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..core.alarms import firing, standing_failover
from ..core.config import ClusterConfig
from ..core.errors import AwsError
from ..core.models import AlarmStatus, Topology
from ..core.planner import decide_failover
from ..core.readiness import Readiness, assess
from ..observability import emit, logger
from . import preflight
from .deps import Deps
from .failover import standing_request, with_probe_word
from .snapshot import Known


class ReadinessCheck:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def check(self, cfg: ClusterConfig) -> Readiness:
        """`rds-ha check`: the judgement from a fresh look, the hooks' existence included."""
        topo = self.d.snapshots.read(cfg, failure_time=self.d.clock.now(), proxy=True)
        alarms = self.failover_alarms(cfg, topo)
        topo = self.with_recent_lag(cfg, topo)
        hooks = {cfg.hooks.pre_failover: self.d.hooks.exists(cfg.hooks.pre_failover)} if cfg.hooks.pre_failover else None
        judged = assess(topo, alarms, hooks, stalled=self.stalled(cfg, topo, alarms))
        return replace(judged, warnings=tuple(preflight.warnings(self.d, cfg, topo.primary)))

    def of_status(self, cfg: ClusterConfig, topo: Topology) -> tuple[Readiness, Mapping[str, AlarmStatus] | None]:
        """The judgement `status` shows, and every mapped alarm as CloudWatch shows it (one DescribeAlarms);
        alarms that cannot be read are judged unknown (None: status still shows the rest)."""
        names = [a for a, _ in cfg.alarms.roles()]
        try:
            alarms: Mapping[str, AlarmStatus] | None = self.d.cloudwatch.alarms(_alarm_region(cfg, topo), names) if names else {}
        except AwsError as exc:
            logger.warning(f"status: alarms of {cfg.name} not read: {exc}")
            alarms = None
        failover = None if alarms is None else {n: a for n, a in alarms.items() if n in cfg.alarms.failover}
        return assess(topo, failover, stalled=self.stalled(cfg, topo, failover or {})), alarms

    def stalled(self, cfg: ClusterConfig, topo: Topology, alarms: Mapping[str, AlarmStatus]) -> str | None:
        """Why a failover alarm still in ALARM has no failover under way (a refusal, a block; or nothing, and the
        next reconcile starts it), judged as reconcile judges it: on the lag window before the alarm's transition."""
        if topo.state.workflow is not None:
            return None
        standing = standing_failover(topo.state, firing(cfg, topo.state, {n: a for n, a in alarms.items() if a.state == "ALARM"}))
        if standing is None:
            return None
        request = with_probe_word(self.d, cfg, standing_request(standing, alarms[standing.alarm]), alarms)
        plan = decide_failover(self.d.snapshots.read(cfg, failure_time=standing.at, known=Known(alarms=alarms)), request)
        if plan.outcome == "start":
            return f"nothing refuses it now: the next reconcile (within a minute) starts it ({plan.reason})"
        return None if plan.outcome in {"ignored", "duplicate"} else plan.reason

    @staticmethod
    def publish(readiness: Readiness) -> Readiness:
        """FailoverReady (0/1) and EligibleCandidates of the cluster (EMF, no API call); the reasons in the log."""
        emit("FailoverReady", readiness.cluster, 1 if readiness.ready else 0)
        emit("EligibleCandidates", readiness.cluster, readiness.eligible)
        if not readiness.ready:
            logger.info(f"{readiness.cluster}: {readiness.sentence}", extra={"cluster": readiness.cluster, "kind": "not_ready"})
        return readiness

    def failover_alarms(self, cfg: ClusterConfig, topo: Topology) -> dict[str, AlarmStatus]:
        """The cluster's failover alarms as CloudWatch shows them, in the primary's region."""
        return self.d.cloudwatch.alarms(_alarm_region(cfg, topo), cfg.alarms.failover) if cfg.alarms.failover else {}

    def with_recent_lag(self, cfg: ClusterConfig, topo: Topology) -> Topology:
        """A failover look (lag in the window) with each replica's latest reading too (the reader set's view). Another
        region's metrics that cannot be read are that region's trouble: its replicas' verdicts say so."""
        of_cluster = [i for i in topo.instances.values() if i.is_replica]
        home = {topo.state.primary_region or cfg.region}
        recent, unread = self.d.snapshots.recent_lag_by_region(of_cluster, {i.id: cfg for i in of_cluster}, must=home)
        return replace(topo, recent_lag=recent, metrics_unread={**topo.metrics_unread, **unread})


def _alarm_region(cfg: ClusterConfig, topo: Topology) -> str:
    """Where the cluster's alarms are read: the primary's region (a cross-region failover may have moved it)."""
    return topo.primary.region if topo.primary is not None else cfg.region
