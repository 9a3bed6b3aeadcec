"""`rds-ha status`: one fresh look at the cluster (lag in the last window and latest, its failover
alarms), described by `core.status`."""

from __future__ import annotations

from dataclasses import replace

from ..core.config import ClusterConfig
from ..core.status import ClusterStatus, describe
from .deps import Deps
from .readiness import ReadinessCheck


class Status:
    def __init__(self, deps: Deps, readiness: ReadinessCheck) -> None:
        self.d, self.readiness = deps, readiness

    def status(self, cfg: ClusterConfig) -> ClusterStatus:
        topo = self.readiness.with_recent_lag(cfg, self.d.snapshots.read(cfg, failure_time=self.d.clock.now()))
        readiness, alarms = self.readiness.of_status(cfg, topo)
        return replace(describe(topo, readiness, alarms), lease=self.d.leases.view(cfg.name), at=self.d.clock.now())

    def region(self, cfg: ClusterConfig) -> str:
        """Where the cluster's primary lives now (a cross-region failover may have moved it)."""
        state = self.d.table.get_state(cfg.name)
        return (state.primary_region if state else None) or cfg.region
