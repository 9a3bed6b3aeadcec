"""Randomized interleavings: failover deliveries, reconcile, scale-out and scale-in, a switchover, an
operator's `replicas remove` and `ack`, and an RDS event, all at once, switched at every AWS call in an
order drawn from a seed, with simulated time jumping (slow calls: leases expire mid-run) and AWS calls
failing. After every step:

- the writer record, when it changes, names a standalone, available, non-fenced instance (one only);
- no instance the state has called primary is deleted;
- reader records name only instances that exist;
and at the end, at most one promotion per failure, and the writer on the state's primary.

`make test` runs a few seeds; `make reliability` many more (tests/reliability/test_interleavings.py;
RELIABILITY.md reports them).
"""

from __future__ import annotations

import json
import os
import random
from datetime import timedelta
from typing import Any

import pytest
from moto.dynamodb.models import dynamodb_backends
from moto.route53.models import route53_backends

from rds_ha.core.errors import AwsError, LeaseBusyError, StateConflictError
from rds_ha.handlers.dns_sync import handler as dns_sync
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.handlers.scaling import handler as scaling
from rds_ha.local import moto_fidelity, samples

from ..builders import REGION, Sandbox, alarm_event, build_cluster, context
from ..interleave import Scheduler, Worker
from .test_read_capacity import CAPACITY_ALARMS

ACCOUNT = "123456789012"
FAST_SEEDS = int(os.environ.get("RDS_HA_FAST_SEEDS", "12"))
WRITER = "writer.orders.example.internal."
READER = "reader.orders.example.internal."


class World:
    """moto's own state, read without AWS calls (the workers stay parked while it is read)."""

    def __init__(self, aws: Sandbox) -> None:
        self.aws = aws
        self.ever_primary: set[str] = set()
        self.writer: list[str] | None = None
        self.violations: list[str] = []

    def _violation(self, text: str) -> None:
        if text not in self.violations:  # each reported once, however many steps it lasts
            self.violations.append(text)

    def _dbs(self) -> dict[str, Any]:
        return dict(moto_fidelity.backend(REGION).databases)

    def _records(self, name: str) -> list[Any]:
        zone = route53_backends[ACCOUNT]["aws"].zones[self.aws.zone_id]
        return [rs for rs in zone.rrsets if rs.name == name and rs.type == "CNAME"]

    def _state_primary(self) -> str | None:
        item = dynamodb_backends[ACCOUNT][REGION].get_item(os.environ["RDS_HA_TABLE"], {"pk": {"S": "CLUSTER#orders"}, "sk": {"S": "STATE"}})
        return json.loads(item.attrs["state"].value)["primary"] if item is not None else None

    def check(self) -> None:
        dbs = self._dbs()
        by_endpoint = {db.address: db for db in dbs.values()}
        writer = sorted(str(v) for rs in self._records(WRITER) for v in rs.records)
        if writer != self.writer:
            if len(writer) > 1:
                self._violation(f"the writer names {writer}")
            for value in writer:
                db = by_endpoint.get(value)
                fenced = db is not None and any(t["Key"] == "rds-ha:fenced" for t in db.tags)
                if db is None or db.source_db_instance_identifier or db.status != "available" or fenced:
                    what = (
                        "a deleted instance"
                        if db is None
                        else f"{db.db_instance_identifier} ({db.status}, replica of {db.source_db_instance_identifier}, fenced {fenced})"
                    )
                    self._violation(f"the writer moved to {what}")
            self.writer = writer
        primary = self._state_primary()
        if primary is not None:
            self.ever_primary.add(primary)
        for gone in sorted(self.ever_primary - set(dbs)):
            self._violation(f"{gone}, called primary by the state, was deleted")
        self.ever_primary &= set(dbs)  # reported once
        for rs in self._records(READER):
            if rs.set_identifier and rs.set_identifier not in dbs:
                self._violation(f"the reader set names {rs.set_identifier}, which does not exist")


def _operations(aws: Sandbox, rng: random.Random, failed: bool) -> list[Worker]:
    cfg = aws.cfg
    assert cfg is not None
    now = aws.clock.now()

    def until() -> Any:
        return aws.clock.now() + timedelta(seconds=300)

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
    ]
    chosen = rng.sample(every, rng.randint(3, len(every)))
    if failed and not any(w.name.startswith("failover") for w in chosen):
        chosen.append(every[0])
    return chosen


# Errors an operation may end with, as its caller sees them: AWS past retries (a handler raises it
# for Lambda to retry), the lease held by another run (the CLI says so), an operator's write racing.
ALLOWED = (AwsError, LeaseBusyError, StateConflictError)


def run_seed(aws: Sandbox, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    replicas = {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1a", 0.5)}
    build_cluster(aws, replicas, min_replicas=1, extra=CAPACITY_ALARMS)
    world = World(aws)
    world.check()  # the writer as it starts: on the primary
    failed = rng.random() < 0.7
    if failed:
        moto_fidelity.set_status("orders-db", "failed")
    else:
        aws.set_alarm("OK")
    promotions = aws.count_calls("rds", "PromoteReadReplica")
    workers = _operations(aws, rng, failed)
    scheduler = Scheduler(seed, aws.clock)
    for client in ("rds", "route53", "cloudwatch", "dynamodb", "sns"):
        aws.clients.client(client, REGION)
    scheduler.attach(aws.clients)
    scheduler.run(workers, world.check)
    for w in workers:
        if w.error is not None and not isinstance(w.error, ALLOWED):
            world.violations.append(f"{w.name} raised {type(w.error).__name__}: {w.error}")
    # Afterwards, with nothing else running, reconcile brings the cluster to rest.
    scheduler.workers.clear()
    for _ in range(4):
        aws.clock.advance(120)
        reconcile({}, context())
        world.check()
    switchovers = sum(1 for w in workers if w.name == "switchover")
    if promotions[0] > int(failed) + switchovers:
        world.violations.append(f"{promotions[0]} promotions for {int(failed)} failure(s) and {switchovers} switchover(s)")
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
        "violations": world.violations,
    }


@pytest.mark.parametrize("seed", range(FAST_SEEDS))
def test_random_interleavings_keep_one_primary(aws: Sandbox, seed: int) -> None:
    report = run_seed(aws, seed)
    assert report["violations"] == [], report
