"""Randomized interleavings: failover deliveries, reconcile, scale-out and scale-in, a fenced switchover, an
operator's `replicas remove` and `ack`, an RDS event, the SQL probe's verdict, the primary dying mid-run and
someone putting the fence's parameter back (a Terraform re-apply), all at once, switched at every AWS call in an
order drawn from a seed.

The faults: simulated time jumping (slow calls: leases expire mid-run); AWS calls failing; a process dying at a
call, before it is sent or right after AWS took a mutating one (no cleanup: its lease stays until it expires);
SIGTERM at those same points (it unwinds, releasing what it holds); promotions that take minutes (past
switchover.catch_up_seconds) or fail (`failed`, `incompatible-parameters`); ReplicaLag arriving for every replica,
new ones included, and late for the failure's own window; the probe's newer samples of the primary.

After every step:

- the writer record, when it changes, names a standalone, available, non-fenced instance (one only);
- no instance the state has called primary is deleted;
- reader records name only instances that exist;
- at most one instance is writable or becoming writable (a replica whose promotion RDS accepted counts), an
  instance whose write fence is in effect (its parameter says read-only) and a fenced old primary out of every
  record aside;
- between workflows, no healthy standalone instance the writer names carries the fence tag or sits in the
  state's fenced list;
- a run ended by SIGTERM holds no lease.

At the end, while reconcile brings the cluster to rest (every two minutes, for 16 minutes), after each reconcile:
a down primary is never left down when an automatic failover of it would start now and would have at the
previous look too (it is failed over within one reconcile of its last refusal ending), and `check` never says
ready while it is down and not failed over. And: at most one accepted promotion per failure (and per failed
promotion) and switchover, none without a failure or a switchover; no switchover of another primary than the one
it was asked about; the writer on the state's primary.

`make test` runs a few seeds; `make reliability` many more (tests/reliability/test_interleavings.py;
RELIABILITY.md reports them).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.route53.models import route53_backends

from rds_ha.core.config import ClusterConfig
from rds_ha.core.errors import AwsError, LeaseBusyError, StateConflictError
from rds_ha.core.planner import FailoverRequest
from rds_ha.events import ProbeVerdict, probe_verdict_event
from rds_ha.handlers.dns_sync import handler as dns_sync
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.handlers.scaling import handler as scaling
from rds_ha.local import moto_fidelity, samples

from ..builders import REGION, Sandbox, alarm_event, build_cluster, context
from ..fence_sql import FINAL, SECRET, StandIn, use
from ..interleave import Scheduler, Terminated, Worker
from .test_read_capacity import CAPACITY_ALARMS

ACCOUNT = "123456789012"
FAST_SEEDS = int(os.environ.get("RDS_HA_FAST_SEEDS", "12"))
WRITER = "writer.orders.example.internal."
READER = "reader.orders.example.internal."
WRITABLE = {"available", "backing-up", "configuring-enhanced-monitoring", "configuring-log-exports"}
FENCE_PARAMETER = "default_transaction_read_only"
PROBE = f"    probe: {{secret_arn: '{SECRET.replace('master', 'probe')}', tls: disable, interval_seconds: 2}}\n"


def _tagged_fenced(db: Any) -> bool:
    return any(t["Key"] == "rds-ha:fenced" for t in db.tags)


class World:
    """moto's own state, read without AWS calls (the workers stay parked while it is read)."""

    def __init__(self, aws: Sandbox, workers: Callable[[], list[Worker]]) -> None:
        self.aws = aws
        self.workers = workers
        self.ever_primary: set[str] = set()
        self.writer: list[str] | None = None
        self.violations: list[str] = []
        # The last look at rest found an automatic failover of the down primary that would start (see at_rest).
        self.would_start = False
        # Lease owners each worker's thread took (a SIGTERM'd run must hold none of them).
        self.owners: dict[str, set[str]] = {}
        real = aws.service.deps.table.acquire_lease

        def acquire(cluster: str, owner: str, *args: Any, **kwargs: Any) -> bool:
            self.owners.setdefault(threading.current_thread().name, set()).add(owner)
            return bool(real(cluster, owner, *args, **kwargs))

        aws.service.deps.table.acquire_lease = acquire  # type: ignore[method-assign]

    def _violation(self, text: str) -> None:
        if text not in self.violations:  # each reported once, however many steps it lasts
            self.violations.append(text)

    def _dbs(self) -> dict[str, Any]:
        return dict(moto_fidelity.backend(REGION).databases)

    def _records(self, name: str) -> list[Any]:
        zone = route53_backends[ACCOUNT]["aws"].zones[self.aws.zone_id]
        return [rs for rs in zone.rrsets if rs.name == name and rs.type == "CNAME"]

    def _item(self, sk: str) -> Any:
        return dynamodb_backends[ACCOUNT][REGION].get_item(os.environ["RDS_HA_TABLE"], {"pk": {"S": "CLUSTER#orders"}, "sk": {"S": sk}})

    def state(self) -> dict[str, Any] | None:
        item = self._item("STATE")
        return json.loads(item.attrs["state"].value) if item is not None else None

    def _frozen(self, db: Any) -> bool:
        """Its write fence in effect: its parameter group says read-only."""
        group = moto_fidelity.backend(REGION).db_parameter_groups.get(db.db_parameter_group_name or "")
        return group is not None and group.parameters.get(FENCE_PARAMETER, {}).get("ParameterValue") == "1"

    def check(self) -> None:
        dbs = self._dbs()
        by_endpoint = {db.address: db for db in dbs.values()}
        writer = sorted(str(v) for rs in self._records(WRITER) for v in rs.records)
        if writer != self.writer:
            if len(writer) > 1:
                self._violation(f"the writer names {writer}")
            for value in writer:
                db = by_endpoint.get(value)
                if db is None or db.source_db_instance_identifier or db.status != "available" or _tagged_fenced(db):
                    what = (
                        "a deleted instance"
                        if db is None
                        else f"{db.db_instance_identifier} ({db.status}, replica of {db.source_db_instance_identifier}, fenced {_tagged_fenced(db)})"
                    )
                    self._violation(f"the writer moved to {what}")
            self.writer = writer
        state = self.state()
        if state is not None:
            self.ever_primary.add(state["primary"])
        for gone in sorted(self.ever_primary - set(dbs)):
            self._violation(f"{gone}, called primary by the state, was deleted")
        self.ever_primary &= set(dbs)  # reported once
        readers = {rs.set_identifier for rs in self._records(READER)}
        for name in sorted(r for r in readers if r and r not in dbs):
            self._violation(f"the reader set names {name}, which does not exist")
        self._one_writer(dbs, set(writer), readers)
        if state is not None and state.get("workflow") is None:
            for value in writer:
                db = by_endpoint.get(value)
                if db is not None and db.status == "available" and (_tagged_fenced(db) or db.db_instance_identifier in state.get("fenced", [])):
                    self._violation(f"between workflows the writer names {db.db_instance_identifier}, which is fenced")
        self._signalled_hold_nothing()

    def _one_writer(self, dbs: dict[str, Any], writer: set[str], readers: set[str | None]) -> None:
        writers = []
        for iid, db in sorted(dbs.items()):
            if _tagged_fenced(db) and db.address not in writer and iid not in readers:
                continue  # a fenced old primary: out of every record
            if iid in self.aws.fidelity.promoting:
                writers.append(f"{iid} (promoting)")
            elif not db.source_db_instance_identifier and db.status in WRITABLE and not self._frozen(db):
                writers.append(iid)
        if len(writers) > 1:
            self._violation(f"two writable primaries: {', '.join(writers)}")

    def _signalled_hold_nothing(self) -> None:
        lease = self._item("LEASE")
        if lease is None:
            return
        owner, until = lease.attrs["owner"].value, int(lease.attrs["expires_at"].value)
        for w in self.workers():
            if isinstance(w.error, Terminated) and owner in self.owners.get(w.name, set()) and until >= self.aws.clock.now().timestamp():
                self._violation(f"{w.name}, ended by SIGTERM, left its lease held")

    def at_rest(self, cfg: ClusterConfig) -> None:
        """After a reconcile with nothing else running: a down primary is failed over within one reconcile of the
        moment nothing refuses an automatic failover of it (one that would start now, and would have at the
        previous look too, should have been started by the reconcile between), and `check` is not ready while
        it is down and not failed over."""
        service = self.aws.service
        state = self.aws.state()
        down = self._dbs().get(state.primary)
        would_start, self.would_start = self.would_start, False
        if state.workflow is not None or down is None or down.status != "failed":
            return
        alarms = service.deps.cloudwatch.alarms(REGION, cfg.alarms.failover)
        since = [
            a for a in alarms.values() if a.state == "ALARM" and a.updated_at and (state.last_failover_at is None or a.updated_at > state.last_failover_at)
        ]
        if since:
            # The failure as an automatic request would judge it (no delivery record involved: what would any path decide?).
            request = FailoverRequest(trigger="interleavings at rest", failure_time=since[0].updated_at, workflow_id="rest", alarm_instance=state.primary)
            self.would_start = service.failover(cfg, request, self.aws.clock.now() + timedelta(seconds=300), dry_run=True).outcome == "start"
            if self.would_start and would_start:
                self._violation(f"{state.primary} is down and nothing refuses its failover since the last reconcile, which started none")
        if service.check(cfg).ready:
            self._violation(f"check says ready while {state.primary} is down and not failed over")

    def switched_over_another_primary(self, asked: str) -> None:
        for entry in self.aws.service.history("orders"):
            if entry["kind"] == "switchover_started" and entry.get("old_primary") not in (None, asked):
                self._violation(f"a switchover asked about {asked} switched over {entry.get('old_primary')}")


class Probe:
    """What the SQL probe publishes (PrimaryHealthy of the state's primary) and the verdict it may send."""

    def __init__(self, aws: Sandbox, world: World, cw: Any) -> None:
        self.aws, self.world, self.cw = aws, world, cw

    def sample(self) -> None:
        state = self.world.state()
        db = moto_fidelity.backend(REGION).databases.get(state["primary"]) if state else None
        if db is None:
            return
        healthy = 1.0 if db.status == "available" else 0.0
        dims = [{"Name": "cluster", "Value": "orders"}, {"Name": "instance", "Value": db.db_instance_identifier}]
        datum = {"MetricName": "PrimaryHealthy", "Dimensions": dims, "Timestamp": self.aws.clock.now(), "Value": healthy, "StorageResolution": 1}
        self.cw.put_metric_data(Namespace="rds-ha", MetricData=[datum])

    def verdict(self) -> Any:
        """A verdict about orders-db stamped 5 s ago (a blip, if it is healthy), delivered after the probe's next sample."""
        verdict = ProbeVerdict(cluster="orders", primary="orders-db", at=self.aws.clock.now() - timedelta(seconds=5), samples=2, evidence="interleavings")
        self.sample()
        return failover(probe_verdict_event(verdict), context())


def _operations(aws: Sandbox, rng: random.Random, world: World, probe: Probe, failed: bool) -> list[Worker]:
    cfg = aws.cfg
    assert cfg is not None
    now = aws.clock.now()

    def until() -> datetime:
        return aws.clock.now() + timedelta(seconds=300)

    def terraform() -> None:
        """Someone puts the fence's parameter back, once the switchover sealed it and before its promotion."""
        change = [{"ParameterName": FENCE_PARAMETER, "ParameterValue": "0", "ApplyMethod": "immediate"}]
        for _ in range(60):
            wf = (world.state() or {}).get("workflow") or {}
            fence = wf.get("fence") or {}
            with contextlib.suppress(ClientError):  # an injected failure: it did not happen
                if fence.get("position") is not None and not fence.get("lifted_at") and wf.get("promote_issued_at") is None:
                    aws.rds().modify_db_parameter_group(DBParameterGroupName="orders-db-params", Parameters=change)
                    return
                aws.rds().describe_db_parameter_groups(DBParameterGroupName="orders-db-params")  # looks again later

    def primary_dies() -> Any:
        moto_fidelity.set_status("orders-db", "failed")
        aws.set_alarm("ALARM")
        return failover(alarm_event("eventbridge", aws.clock.now()), context())

    every = [
        Worker("failover", lambda: failover(alarm_event("eventbridge", now), context())),
        Worker("failover (sns)", lambda: failover(alarm_event("sns", now), context())),
        Worker("reconcile", lambda: reconcile({}, context())),
        Worker("reconcile 2", lambda: reconcile({}, context())),
        Worker("scale-out", lambda: scaling(alarm_event("eventbridge", now, alarm="orders-replicas-cpu-high", instance="orders-db-r1"), context())),
        Worker("scale-in", lambda: scaling(alarm_event("eventbridge", now, alarm="orders-replicas-cpu-low", instance="orders-db-r1"), context())),
        Worker("switchover", lambda: aws.service.switchover(cfg, None, "interleavings", until())),
        Worker("replicas remove", lambda: aws.service.capacity.remove_replica(cfg, "orders-db-r1", "interleavings", until())),
        Worker("ack", lambda: aws.service.ack(cfg, "interleavings")),
        Worker("rds event", lambda: dns_sync(samples.rds_event("RDS-EVENT-0045", "orders-db-r2", now), context())),
        Worker("terraform", terraform),
        Worker("probe verdict", probe.verdict),
    ]
    if not failed:
        every.append(Worker("primary dies", primary_dies))
    chosen = rng.sample(every, rng.randint(3, len(every)))
    if failed and not any(w.name.startswith("failover") for w in chosen):
        chosen.append(every[0])
    return chosen


# Errors an operation may end with, as its caller sees them: AWS past retries (a handler raises it
# for Lambda to retry), the lease held by another run (the CLI says so), an operator's write racing,
# and the signal the scheduler delivered.
ALLOWED = (AwsError, LeaseBusyError, StateConflictError, Terminated)


def _weather(aws: Sandbox, probe: Probe, client: Any, failure: list[datetime]) -> Callable[[random.Random], None]:
    """Between two steps: CloudWatch publishing ReplicaLag for every replica there is now (new ones included),
    sometimes a late datapoint of the failure's own window; the probe's next sample of the primary."""

    def tick(rng: random.Random) -> None:
        if rng.random() < 0.1:
            probe.sample()
        if rng.random() >= 0.15:
            return
        replicas = [iid for iid, db in moto_fidelity.backend(REGION).databases.items() if db.source_db_instance_identifier]
        times = [aws.clock.now() - timedelta(seconds=10)] + ([failure[0] - timedelta(seconds=20)] if failure and rng.random() < 0.3 else [])
        data = [
            {"MetricName": "ReplicaLag", "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": iid}], "Timestamp": at, "Value": rng.choice((0.5, 1.0, 3.0))}
            for iid in replicas
            for at in times
        ]
        for offset in range(0, len(data), 20):
            client.put_metric_data(Namespace="AWS/RDS", MetricData=data[offset : offset + 20])

    return tick


def run_seed(aws: Sandbox, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    no_data = rng.random() < 0.2  # CloudWatch has not published the replicas' lag yet: a failure now is blocked
    lags: tuple[float | None, ...] = (None, None, None) if no_data else (12.0, 2.0, rng.choice((0.5, 1.5)))
    replicas = dict(zip(("orders-db-r1", "orders-db-r2", "orders-db-r3"), zip(("us-east-1b", "us-east-1c", "us-east-1a"), lags, strict=True), strict=True))
    max_lag = rng.choice((1, 30))  # 1: the switchover may wait for its target to catch up...
    catch_up = rng.choice((30, 300))  # ...long enough for a failover to move the primary meanwhile
    fence = f"    switchover: {{max_lag_seconds: {max_lag}, catch_up_seconds: {catch_up}, fence: {{secret_arn: '{SECRET}', tls: disable}}}}\n"
    cfg = build_cluster(aws, replicas, min_replicas=1, extra=CAPACITY_ALARMS + fence + PROBE, own_parameter_groups=True)
    # The fence's SQL reaches the databases from the operator's switchover only (the Lambdas do not).
    use(aws, StandIn(aws, replayed=rng.choice((lambda: math.inf, lambda: FINAL - 1)), reachable=lambda: threading.current_thread().name == "switchover"))
    aws.fidelity.promote_seconds = rng.choice((0, 0, 45, 400))  # 400 s: past switchover.catch_up_seconds (30)
    if rng.random() < 0.35:  # the likeliest target's promotion fails more often than another's
        aws.fidelity.failed_promotions[rng.choice(("orders-db-r3", "orders-db-r3", "orders-db-r2", "orders-db-r1"))] = rng.choice(
            ("failed", "incompatible-parameters")
        )
    workers: list[Worker] = []
    world = World(aws, lambda: workers)
    world.check()  # the writer as it starts: on the primary
    cw = boto3.client("cloudwatch", region_name=REGION)  # not scheduled: CloudWatch and the probe publish between steps
    probe = Probe(aws, world, cw)
    failed = rng.random() < 0.4
    failure: list[datetime] = []
    if failed:
        moto_fidelity.set_status("orders-db", "failed")
        failure.append(aws.clock.now())
    else:
        aws.set_alarm("OK")
    promotions = aws.count_calls("rds", "PromoteReadReplica")
    workers += _operations(aws, rng, world, probe, failed)
    scheduler = Scheduler(seed, aws.clock, die_p=0.01, term_p=0.01, landed_p=0.06, tick=_weather(aws, probe, cw, failure))
    for client in ("rds", "route53", "cloudwatch", "dynamodb", "sns"):
        aws.clients.client(client, REGION)
    scheduler.attach(aws.clients)
    scheduler.run(workers, world.check)
    for w in workers:
        if w.error is not None and not isinstance(w.error, ALLOWED):
            world.violations.append(f"{w.name} raised {type(w.error).__name__}: {w.error}")
    # Afterwards, with nothing else running (a dead run's lease expires first), reconcile brings the cluster to rest.
    scheduler.workers.clear()
    for _ in range(8):
        aws.clock.advance(120)
        reconcile({}, context())
        world.check()
        world.at_rest(cfg)
    world.switched_over_another_primary("orders-db")
    died = failed or any(w.name == "primary dies" and w.calls for w in workers)
    switchovers = sum(1 for w in workers if w.name == "switchover")
    failures = len(aws.fidelity.promotions_failed)
    if promotions[0] > int(died) + switchovers + failures:
        world.violations.append(f"{promotions[0]} promotions for {int(died)} failure(s), {switchovers} switchover(s) and {failures} failed promotion(s)")
    state = aws.state()
    if aws.writer_targets() != [aws.endpoint(state.primary)]:
        world.violations.append(f"at rest the writer names {aws.writer_targets()}, not the state's primary {state.primary}")
    stats = scheduler.stats
    return {
        "seed": seed,
        "operations": [w.name for w in workers],
        "steps": stats.steps,
        "delays": stats.delays,
        "faults": stats.faults,
        "deaths": stats.deaths,
        "signals": stats.signals,
        "promote_seconds": aws.fidelity.promote_seconds,
        "failed_promotions": failures,
        "violations": world.violations,
    }


@pytest.mark.parametrize("seed", range(FAST_SEEDS))
def test_random_interleavings_keep_one_primary(aws: Sandbox, seed: int) -> None:
    report = run_seed(aws, seed)
    assert report["violations"] == [], report
