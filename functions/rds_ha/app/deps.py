"""One frozen set of dependencies, built once per process (by `App`) and shared by every workflow."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..adapters.aws import AwsClients
from ..adapters.cloudwatch import CloudWatchAdapter
from ..adapters.hooks import Hooks
from ..adapters.notify import Notifier
from ..adapters.proxy import ProxyAdapter
from ..adapters.rds import RdsAdapter
from ..adapters.route53 import Route53Adapter
from ..adapters.state import StateTable
from ..core.clock import Clock
from .executor import Executor
from .fences import Fences
from .hooks import HookCalls
from .lease import Leases
from .recorder import Recorder
from .snapshot import Snapshotter

DEFAULT_TABLE = "rds-ha"
POLL_SECONDS = 10.0
LEASE_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Settings:
    """What the environment configures. Read once, by handlers and the CLI, never by logic."""

    table: str = DEFAULT_TABLE
    topic_arn: str | None = None
    # Does this process reach the databases for a switchover's write fence? The Lambdas do not
    # (RDS_HA_FENCE_SQL=0 in template.yaml): they never try to log in, so never freeze or seal a fence.
    fence_sql: bool = True
    # FailoverFunction's ARN: where the SQL probe sends a confirmed verdict (probe.direct_failover).
    failover_function: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            table=os.environ.get("RDS_HA_TABLE") or DEFAULT_TABLE,
            topic_arn=os.environ.get("RDS_HA_TOPIC_ARN") or None,
            fence_sql=os.environ.get("RDS_HA_FENCE_SQL", "1") != "0",
            failover_function=os.environ.get("RDS_HA_FAILOVER_FUNCTION") or None,
        )


@dataclass(frozen=True)
class Deps:
    settings: Settings
    clients: AwsClients
    clock: Clock
    table: StateTable
    rds: RdsAdapter
    route53: Route53Adapter
    cloudwatch: CloudWatchAdapter
    hooks: HookCalls
    leases: Leases
    snapshots: Snapshotter
    recorder: Recorder
    executor: Executor
    proxies: ProxyAdapter
    # How often a waiting run looks again, and how long a run waits for another to let go of the lease.
    poll_seconds: float = POLL_SECONDS
    lease_wait_seconds: float = LEASE_WAIT_SECONDS


def build(clients: AwsClients, settings: Settings, clock: Clock, poll_seconds: float = POLL_SECONDS) -> Deps:
    table = StateTable(clients, settings.table)
    rds, route53, cloudwatch = RdsAdapter(clients), Route53Adapter(clients), CloudWatchAdapter(clients)
    recorder = Recorder(table, Notifier(clients), clock, settings.topic_arn)
    hooks = HookCalls(Hooks(clients), recorder)
    leases = Leases(table, clock)
    clients.send_guard = leases.before_send  # every mutating attempt is sent only under a live lease
    fences = Fences(clients, reach=settings.fence_sql)
    proxies = ProxyAdapter(clients)
    executor = Executor(rds, route53, cloudwatch, table, recorder, hooks, clock, leases, fences=fences.of, proxies=proxies)
    snapshots = Snapshotter(rds, route53, cloudwatch, table, clock, fences=fences.of, proxies=proxies)
    return Deps(settings, clients, clock, table, rds, route53, cloudwatch, hooks, leases, snapshots, recorder, executor, proxies, poll_seconds)
