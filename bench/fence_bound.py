"""Benchmark: how long a fenced switchover's frozen writes last when its process is killed (-9), on moto's
simulated clock with the fidelity layer.

The run is killed `d` seconds after its fence (the target never replays the final position, so it would lift
the fence itself at switchover.catch_up_seconds); the scheduled reconcile (every 60 s, reaching no database)
runs from `p` seconds after the fence. Each (d, p) is one run; the figure is the time from the fence's
ModifyDBParameterGroup to the one that lifts it, against the documented bound
max(catch_up_seconds, d + FROZEN_LEASE_SECONDS) + 60 s (+1 s: the lease's whole-second expiry).

Run: .venv/bin/python bench/fence_bound.py [catch_up_seconds]
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",  # noqa: S105
    RDS_HA_TABLE="rds-ha-bench",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="ERROR",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws  # noqa: E402

from rds_ha.adapters.aws import AwsClients  # noqa: E402
from rds_ha.app import App, Settings  # noqa: E402
from rds_ha.app.lease import FROZEN_LEASE_SECONDS  # noqa: E402
from rds_ha.handlers import runtime  # noqa: E402
from rds_ha.local import moto_fidelity  # noqa: E402
from rds_ha.local.clock import SimClock  # noqa: E402
from tests.builders import Sandbox, build_cluster, create_table_from_template  # noqa: E402
from tests.fence_sql import RECONCILE_PERIOD, SECRET, frozen_for  # noqa: E402


def one(catch_up: int, dies_after: int, phase: int) -> float:
    with mock_aws():
        clock = SimClock()
        fidelity = moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
        clients = AwsClients()
        moto_fidelity.answer_test_dns(clients.session)
        create_table_from_template(clients, "rds-ha-bench")
        svc = App(clients, Settings.from_env(), clock=clock)
        runtime.use(svc)
        aws = Sandbox(clients=clients, service=svc, clock=clock, fidelity=fidelity)
        fence = f"    switchover: {{max_lag_seconds: 30, catch_up_seconds: {catch_up}, fence: {{secret_arn: '{SECRET}', tls: disable}}}}\n"
        cfg = build_cluster(aws, extra=fence, own_parameter_groups=True)
        aws.set_alarm("OK")
        try:
            return frozen_for(aws, lambda: svc.switchover(cfg, None, "bench", clock.now() + timedelta(seconds=catch_up + 120)), dies_after, phase)
        finally:
            runtime.reset()


def main() -> None:
    catch_up = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    worst, over = 0.0, []
    rows = []
    for dies_after in range(0, catch_up, max(1, catch_up // 6)):
        for phase in range(1, 60, 10):
            frozen = one(catch_up, dies_after, phase)
            bound = max(catch_up, dies_after + FROZEN_LEASE_SECONDS) + RECONCILE_PERIOD + 1
            rows.append((dies_after, phase, frozen, bound))
            worst = max(worst, frozen)
            if frozen > bound:
                over.append((dies_after, phase, frozen, bound))
    print(f"catch_up_seconds {catch_up}, frozen lease {FROZEN_LEASE_SECONDS}s, reconcile every {RECONCILE_PERIOD}s: {len(rows)} runs")
    for dies_after in sorted({r[0] for r in rows}):
        seen = [r[2] for r in rows if r[0] == dies_after]
        bound = rows[[r[0] for r in rows].index(dies_after)][3]
        print(f"  killed {dies_after:>3}s after the fence: frozen {min(seen):.0f}-{max(seen):.0f}s (bound {bound}s)")
    print(f"worst: {worst:.0f}s; over the bound: {over or 'none'}")


if __name__ == "__main__":
    main()
