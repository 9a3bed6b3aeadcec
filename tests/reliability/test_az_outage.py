"""An AZ-wide outage: 50 clusters whose primaries all fail at once, every alarm delivered concurrently.

Run: make reliability (prints the figures RELIABILITY.md reports).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rds_ha.core.config import parse_config
from rds_ha.handlers.failover import handler
from rds_ha.local import moto_fidelity
from rds_ha.local.samples import alarm_event
from rds_ha.local.sandbox import create_fleet

from ..builders import REGION, Sandbox, context

CLUSTERS = 50
pytestmark = pytest.mark.reliability


def _build(aws: Sandbox) -> None:
    text = create_fleet(aws.clients, CLUSTERS, aws.clock.now(), alarm_state="ALARM")
    aws.service.apply(parse_config(text, "az.yaml").clusters, "az.yaml", "test")
    for n in range(CLUSTERS):
        moto_fidelity.set_status(f"c{n}-db", "failed")


def test_every_cluster_fails_over_exactly_once(aws: Sandbox, capsys: Any) -> None:
    _build(aws)
    calls: Counter[str] = Counter()
    stamps: list[float] = []

    def seen(event_name: str, **_: Any) -> None:
        calls[event_name.split(".", 1)[1]] += 1
        if event_name.startswith("before-call.rds."):
            stamps.append(time.perf_counter())

    for service, region in (("rds", REGION), ("route53", REGION), ("cloudwatch", REGION), ("dynamodb", None)):
        aws.clients.client(service, region).meta.events.register("before-call", seen)
    events = [alarm_event("eventbridge", aws.clock.now(), alarm=f"c{n}-primary-down", instance=f"c{n}-db") for n in range(CLUSTERS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLUSTERS) as pool:
        results = list(pool.map(lambda e: handler(e, context()), events))
    wall = time.perf_counter() - start

    assert [r["outcome"] for r in results] == ["complete"] * CLUSTERS, Counter(r["outcome"] for r in results)
    assert calls["rds.PromoteReadReplica"] == CLUSTERS
    for n in range(CLUSTERS):
        state = aws.service.deps.table.get_state(f"c{n}")
        assert state is not None and state.primary == f"c{n}-db-r1" and state.workflow is None
    rds_calls = sum(v for k, v in calls.items() if k.startswith("rds."))
    with capsys.disabled():
        print(f"\nAZ outage: {CLUSTERS} clusters failed over once each in {wall:.1f}s wall (moto in-process, {CLUSTERS} threads)")
        print(
            f"AWS calls: {sum(calls.values())} in all; RDS {rds_calls} ({rds_calls / CLUSTERS:.1f} per failover): "
            + ", ".join(f"{k} {v}" for k, v in sorted(calls.items()) if k.startswith("rds."))
        )
        print(
            f"at RDS's default quota (burst 300, then 12/s per account and region) {rds_calls} RDS calls need at least {max(0.0, (rds_calls - 300) / 12):.0f}s"
        )


@pytest.mark.parametrize("burst", [300, 50])
def test_under_rds_throttling_every_cluster_still_fails_over_once(aws: Sandbox, capsys: Any, burst: int) -> None:
    """The same outage with RDS refusing calls beyond a rate, as AWS does: its documented quota (burst
    300, then 12 per second), and a burst of 50 (what is left when other tools share the account's
    quota). botocore's adaptive retries absorb the refusals, reconcile finishes whatever a run
    leaves, and no cluster is promoted twice."""
    _build(aws)
    limit = moto_fidelity.RateLimit(burst=burst, per_second=12)
    aws.fidelity.rds_rate = limit
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    events = [alarm_event("eventbridge", aws.clock.now(), alarm=f"c{n}-primary-down", instance=f"c{n}-db") for n in range(CLUSTERS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLUSTERS) as pool:
        results = list(pool.map(lambda e: handler(e, context()), events))
    first = Counter(r["outcome"] for r in results)
    sweeps = 0
    while any((s := aws.service.deps.table.get_state(f"c{n}")) is None or s.workflow is not None for n in range(CLUSTERS)) and sweeps < 20:
        aws.clock.advance(60)
        aws.service.reconcile(None, aws.clock.now())
        sweeps += 1
    wall = time.perf_counter() - start

    assert promotes[0] == CLUSTERS  # each promoted once: a throttled promotion is retried, never doubled
    for n in range(CLUSTERS):
        state = aws.service.deps.table.get_state(f"c{n}")
        assert state is not None and state.primary == f"c{n}-db-r1" and state.workflow is None, (n, state)
    if burst == 50:
        assert limit.throttled > 0  # the outage exceeded this rate: the retries were exercised
    with capsys.disabled():
        print(
            f"\nAZ outage under RDS throttling (burst {burst}, 12/s): {limit.throttled} calls refused with Throttling and retried, "
            f"{limit.allowed} RDS calls accepted; first runs {dict(first)}; {sweeps} reconcile sweep(s) after; "
            f"all {CLUSTERS} failed over once in {wall:.1f}s wall"
        )
