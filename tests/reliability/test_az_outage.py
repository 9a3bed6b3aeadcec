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
        state = aws.service.table.get_state(f"c{n}")
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
