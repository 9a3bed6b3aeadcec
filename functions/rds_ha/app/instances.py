"""An operator waiting on an instance: where it is, and each AWS status it goes through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..core.config import ClusterConfig
from ..core.errors import InstanceNotFoundError
from ..core.models import Instance
from .deps import Deps


class Instances:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def locate(self, cfg: ClusterConfig, instance: str) -> str:
        """The region of the cluster's regions `instance` is in (the cluster's own if none)."""
        for region in cfg.regions:
            if self.d.rds.describe_ids(region, [instance]):
                return region
        return cfg.region

    def replicas(self, cfg: ClusterConfig, primary: str) -> list[str]:
        """The replicas of `primary` as RDS lists them (no state table needed: a cluster not yet applied)."""
        return sorted(i for _, i in self.d.rds.describe(cfg.region, primary).replicas)

    def watch(self, region: str, instance: str, done: Callable[[Instance | None], bool], deadline: datetime, on_change: Callable[[str], None]) -> bool:
        """Poll `instance` until `done` holds (True) or the deadline passes (False), reporting each new
        AWS status (with Multi-AZ) as it appears."""
        last = None
        while True:
            try:
                inst: Instance | None = self.d.rds.describe(region, instance)
            except InstanceNotFoundError:
                inst = None
            label = "deleted" if inst is None else inst.status + (", Multi-AZ" if inst.multi_az else ", single-AZ")
            if label != last:
                on_change(label)
                last = label
            if done(inst):
                return True
            if self.d.clock.now() + timedelta(seconds=self.d.poll_seconds) > deadline:
                return False
            self.d.clock.sleep(self.d.poll_seconds)
