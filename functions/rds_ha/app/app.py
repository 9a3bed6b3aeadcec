"""The application: one frozen set of dependencies and the workflows built on it, once per process.

Handlers and the CLI use these methods and nothing below them (no table, executor or adapter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..adapters.aws import AwsClients
from ..adapters.hooks import Hooks
from ..core.clock import Clock, SystemClock
from ..core.config import ClusterConfig
from ..core.errors import ClusterNotFoundError
from ..core.models import ClusterState
from ..core.planner import FailoverRequest
from ..core.readiness import Readiness
from ..core.status import ClusterStatus
from ..events import AlarmTrigger, ProbeVerdict, RdsEvent
from .apply import Apply
from .capacity import Capacity
from .controls import Controls
from .deps import POLL_SECONDS, Deps, Settings, build
from .drill import Drill
from .drive import Drive
from .failover import Failover
from .instances import Instances
from .rds_events import RdsEvents
from .readiness import ReadinessCheck
from .reconcile import Reconcile
from .results import Result
from .status import Status
from .switchover import Switchover

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from .probe import HealthProbe


class App:
    def __init__(self, clients: AwsClients, settings: Settings, clock: Clock | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self.deps: Deps = build(clients, settings, clock or SystemClock(), poll_seconds)
        d = self.deps
        drive = Drive(d)
        self.failovers = Failover(d, drive)
        self.switchovers = Switchover(d, drive)
        self.capacity = Capacity(d)
        self.readiness = ReadinessCheck(d)
        self.reconciler = Reconcile(d, drive, self.failovers, self.capacity, self.readiness)
        self.rds_events = RdsEvents(d, drive)
        self.instances = Instances(d)
        self.controls = Controls(d)
        self.drill = Drill(d, self.failovers, self.switchovers, self.reconciler)
        self._status = Status(d, self.readiness)

    @contextmanager
    def watching(self, watch: Callable[[str, str], None]) -> Iterator[None]:
        """`watch(kind, message)` is shown each step as it is recorded, and each look of a wait, meanwhile."""
        self.deps.recorder.watchers.append(watch)
        try:
            yield
        finally:
            self.deps.recorder.watchers.remove(watch)

    @classmethod
    def for_settings(cls, settings: Settings) -> App:
        """The app on AWS itself (clients resolved as boto3 does), on the system clock."""
        return cls(AwsClients(), settings)

    # -- what the process was built with -------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @property
    def clock(self) -> Clock:
        return self.deps.clock

    @property
    def poll_seconds(self) -> float:
        return self.deps.poll_seconds

    @property
    def table_name(self) -> str:
        return self.deps.table.name

    def ensure_table(self) -> bool:
        """Create the state table if it does not exist (True when it was created)."""
        return self.deps.table.ensure()

    def idempotency_store(self, key: str) -> DynamoDBPersistenceLayer:
        """Powertools' idempotency records, in the state table under `idempotency#<key>`."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(
            table_name=self.settings.table,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=f"idempotency#{key}",
            boto3_client=self.deps.clients.client("dynamodb"),
        )

    def health_probe(
        self, endpoints: dict[str, tuple[str, int]] | None = None, publish: bool = True, trigger: Callable[[dict[str, Any]], None] | None = None
    ) -> HealthProbe:
        """`trigger` sends a confirmed verdict on (default: an asynchronous invoke of settings.failover_function)."""
        from .probe import HealthProbe  # the database drivers load with the probe only

        function = self.deps.settings.failover_function
        reach: Callable[[], str | None] | None = None
        if trigger is None and function:
            hooks = Hooks(self.deps.clients)

            def trigger(event: dict[str, Any]) -> None:
                hooks.tell(function, event)

            def reach() -> str | None:
                return hooks.reachable(function)

        return HealthProbe(self.deps, endpoints=endpoints, publish=publish, trigger=trigger, reach=reach)

    # -- lookups -------------------------------------------------------------------------------
    def clusters(self) -> list[ClusterConfig]:
        return self.deps.table.configs()

    def cluster(self, name: str) -> ClusterConfig:
        for cfg in self.clusters():
            if cfg.name == name:
                return cfg
        raise ClusterNotFoundError(f"no cluster named {name!r} is configured in table {self.table_name} (rds-ha apply -f FILE)")

    def cluster_for_alarm(self, alarm: str) -> ClusterConfig | None:
        return self.failovers.cluster_for(alarm)

    def state(self, cfg: ClusterConfig) -> ClusterState:
        return self.deps.snapshots.state(cfg)

    def history(self, cluster: str, limit: int = 100) -> list[dict[str, Any]]:
        return self.deps.table.history(cluster, limit)

    # -- workflows -----------------------------------------------------------------------------
    def handle_alarm(self, trigger: AlarmTrigger, deadline: datetime, cfg: ClusterConfig | None = None) -> Result:
        return self.failovers.handle_alarm(trigger, deadline, cfg)

    def probe_verdict(self, verdict: ProbeVerdict, deadline: datetime, cfg: ClusterConfig | None = None) -> Result:
        return self.failovers.handle_verdict(verdict, deadline, cfg)

    def failover(self, cfg: ClusterConfig, request: FailoverRequest, deadline: datetime, dry_run: bool = False) -> Result:
        return self.failovers.failover(cfg, request, deadline, dry_run)

    def switchover(self, cfg: ClusterConfig, target: str | None, by: str, deadline: datetime, dry_run: bool = False) -> Result:
        return self.switchovers.switchover(cfg, target, by, deadline, dry_run)

    def reconcile(self, names: list[str] | None, deadline: datetime) -> list[Result]:
        return self.reconciler.run(names, deadline)

    def rds_event(self, event: RdsEvent, deadline: datetime) -> Result:
        return self.rds_events.handle(event, deadline)

    def check(self, cfg: ClusterConfig) -> Readiness:
        return self.readiness.check(cfg)

    def status(self, cfg: ClusterConfig) -> ClusterStatus:
        return self._status.status(cfg)

    def status_region(self, cfg: ClusterConfig) -> str:
        return self._status.region(cfg)

    # -- operator controls and configuration ---------------------------------------------------
    def apply(self, clusters: list[ClusterConfig], source: str, applied_by: str, tag_members: bool = False) -> list[str]:
        return Apply(self.deps).apply(clusters, source, applied_by, tag_members)

    def pause(self, cfg: ClusterConfig, by: str, reason: str) -> Result:
        return self.controls.pause(cfg, by, reason)

    def resume(self, cfg: ClusterConfig, by: str) -> Result:
        return self.controls.resume(cfg, by)

    def ack(self, cfg: ClusterConfig, by: str) -> Result:
        return self.controls.ack(cfg, by)
