"""RDS instance events (created, deleted, stopped, started, failover, replication stopped or resumed):
re-sync the instance's cluster, so that DNS never names an instance that is gone or stopped."""

from __future__ import annotations

from datetime import datetime

from .. import TAG_CLUSTER
from ..core.config import ClusterConfig
from ..core.errors import InstanceNotFoundError
from ..core.models import ClusterState
from ..events import RdsEvent
from .deps import Deps
from .drive import Drive
from .results import Result
from .runs import under_lease
from .snapshot import known_ids


class RdsEvents:
    def __init__(self, deps: Deps, drive: Drive) -> None:
        self.d, self.drive = deps, drive

    def cluster_for(self, event: RdsEvent) -> ClusterConfig | None:
        """The cluster an instance belongs to: its tag (RDS sends tags with the event), the config's
        primary, the instance's tag as RDS describes it, the cluster's state, or its reader records."""
        configs = [c for c in self.d.table.configs() if event.region in c.regions]
        by_name = {c.name: c for c in configs}
        if event.tags.get(TAG_CLUSTER) in by_name:
            return by_name[event.tags[TAG_CLUSTER]]
        for cfg in configs:
            if cfg.primary == event.instance:
                return cfg
        try:
            tag = self.d.rds.describe(event.region, event.instance).cluster_tag
        except InstanceNotFoundError:
            tag = None
        if tag in by_name:
            return by_name[str(tag)]
        for cfg in configs:
            state = self.d.table.get_state(cfg.name)
            if state is not None and (event.instance in known_ids(state) or event.instance in state.replication_stopped):
                return cfg
        # Gone, and untagged in the event: a reader record still naming it tells whose it was.
        for cfg in configs:
            if cfg.dns.reader and any(r.set_identifier == event.instance for r in self.d.route53.records(cfg.dns.zone_id, cfg.dns.reader)):
                return cfg
        return None

    def handle(self, event: RdsEvent, deadline: datetime) -> Result:
        if event.kind is None:
            return self.d.recorder.ignored(None, f"{event.describe()}: not an event rds-ha acts on")
        cfg = self.cluster_for(event)
        if cfg is None:
            return self.d.recorder.ignored(None, f"{event.describe()}: {event.instance} is not a member of any cluster")

        def sync() -> Result:
            self._note_replication(cfg, event)
            self.d.recorder.history(cfg.name, "rds_event", f"{event.describe()}: {event.message}", event_id=event.event_id)
            return self.drive.run(cfg, deadline, dns_only=True).after(event.describe())

        return under_lease(self.d, cfg, event.describe(), sync)

    def _note_replication(self, cfg: ClusterConfig, event: RdsEvent) -> None:
        """Replication stopped: the replica leaves the reader set until a newer ReplicaLag shows it back."""
        state = self.d.table.get_state(cfg.name) or ClusterState(cluster=cfg.name, primary=cfg.primary)
        stopped = dict(state.replication_stopped)
        if event.kind == "replication_stopped":
            if event.instance in stopped and stopped[event.instance] >= event.at:
                return
            stopped[event.instance] = event.at
        elif event.kind in ("replication_resumed", "deleted", "created") and event.instance in stopped:
            if stopped[event.instance] > event.at:
                return  # events arrive out of order: a stop newer than this resume still holds
            del stopped[event.instance]
        else:
            return
        self.d.table.put_state(state.model_copy(update={"replication_stopped": stopped}))
