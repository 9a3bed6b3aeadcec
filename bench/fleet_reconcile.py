"""Benchmark: one reconcile sweep over a fleet of healthy clusters (3 instances each), on moto in-process.

Reports, per fleet size, the AWS calls of one sweep by API and the sweep's wall time. RDS, CloudWatch
and Route 53 calls should grow with pages of results (100 instances per DescribeDBInstances page, 500
replicas per GetMetricData, 100 alarms per DescribeAlarms, 300 record sets per zone listing), not with
clusters; the per-cluster calls (the state item, the lease) are listed as such.

Run: .venv/bin/python bench/fleet_reconcile.py [sizes...]   (default 10 100 500)
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S105
    AWS_DEFAULT_REGION="us-east-1",
    RDS_HA_TABLE="rds-ha-bench",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="ERROR",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from rds_ha.adapters.aws import AwsClients  # noqa: E402
from rds_ha.app import App, Settings  # noqa: E402
from rds_ha.core.config import parse_config  # noqa: E402
from rds_ha.local import moto_fidelity, sandbox  # noqa: E402
from rds_ha.local.clock import SimClock  # noqa: E402
from tests.builders import create_table_from_template  # noqa: E402

# Calls per page of results (or per hosted zone), not per cluster.
PER_PAGE = {"DescribeDBInstances", "GetMetricData", "DescribeAlarms", "Query", "GetHostedZone", "ListResourceRecordSets"}


def sweep(clusters: int) -> tuple[float, Counter[str], int, int]:
    with mock_aws():
        clock = SimClock()
        moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
        clients = AwsClients()
        create_table_from_template(clients, "rds-ha-bench")
        svc = App(clients, Settings.from_env(), clock=clock)
        svc.apply(parse_config(sandbox.create_fleet(clients, clusters, clock.now())).clusters, "bench", "bench")
        svc.reconcile(None, clock.now())  # the first sweep builds every reader set
        calls: Counter[str] = Counter()

        def seen(event_name: str, **_: Any) -> None:
            calls[event_name.split(".")[-1]] += 1

        clients.session.events.register("before-call", seen)
        for service, region in (("rds", "us-east-1"), ("route53", "us-east-1"), ("cloudwatch", "us-east-1"), ("dynamodb", None)):
            clients.client(service, region).meta.events.register("before-call", seen)
        clock.advance(60)
        start = time.perf_counter()
        results = svc.reconcile(None, clock.now())
        took = time.perf_counter() - start
        assert all(r.outcome == "steady" for r in results), {r.outcome for r in results}
        # Readiness is judged for every cluster from what the sweep read (FailoverReady, EligibleCandidates).
        judged = sum(1 for r in results if r.readiness is not None)
        ready = sum(1 for r in results if r.readiness is not None and r.readiness.ready)
        return took, calls, judged, ready


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 500]
    print(f"moto {__import__('moto').__version__}, in-process; one reconcile sweep of healthy clusters (3 instances each)")
    print(
        "| clusters | wall (s) | AWS calls | per cluster | RDS, CloudWatch, Route 53 (per page or zone) | DynamoDB state and lease (per cluster) "
        "| readiness judged (ready) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        took, calls, judged, ready = sweep(n)
        total = sum(calls.values())
        paged = sum(v for k, v in calls.items() if k in PER_PAGE)
        print(f"| {n} | {took:.1f} | {total} | {total / n:.1f} | {paged} | {total - paged} | {judged} ({ready}) |")
        print(f"|   | by API: {', '.join(f'{k} {v}' for k, v in sorted(calls.items()))} | | | | | |")


if __name__ == "__main__":
    main()
