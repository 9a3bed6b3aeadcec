"""Benchmark: detection through the SQL probe's direct path (probe.direct_failover), on the local lab.

Each run builds a fresh lab (real PostgreSQL primary and two streaming replicas behind moto), starts the
probe as HealthProbeFunction runs it (default settings: a sample every 10 s, 2 confirming samples), fails
the primary at a random moment of the probe's schedule and measures the time from the failure to the
PromoteReadReplica request: detection, the verdict's asynchronous delivery (a thread running
FailoverFunction's handler, as Lambda would) and rds-ha's decision. Failure modes: `kill` (the server
crashes: `pg_ctl stop -m immediate`) and `stop` (black-holed: every process of the server SIGSTOPped, its
TCP connections open and silent).

Run: .venv/bin/python bench/detection.py RUNS [kill|stop|both]   (default both, black-holed first: the last
line, `detection median S s, max S s over N runs`, is the killed primary's)
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions"))
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", RDS_HA_TABLE="rds-ha-bench")  # noqa: S105 - moto
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.pop("AWS_ENDPOINT_URL", None)

from botocore.awsrequest import AWSResponse  # noqa: E402
from moto import mock_aws  # noqa: E402

from rds_ha.adapters.aws import AwsClients  # noqa: E402
from rds_ha.app import App, Settings  # noqa: E402
from rds_ha.cli.demo import CONFIG  # noqa: E402
from rds_ha.core.clock import SystemClock  # noqa: E402
from rds_ha.core.config import parse_config  # noqa: E402
from rds_ha.handlers import failover as failover_handler  # noqa: E402
from rds_ha.handlers import runtime  # noqa: E402
from rds_ha.local import moto_fidelity, sandbox  # noqa: E402
from rds_ha.local.context import LocalContext  # noqa: E402
from rds_ha.local.lab import APP_PASSWORD, APP_USER, PgLab  # noqa: E402

FAILOVER_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:FailoverFunction"
PROBE = "    probe: {{secret_arn: '{arn}', tls: disable}}\n"


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def _deliver(request: Any, **_: Any) -> AWSResponse:
    """Lambda's asynchronous invocation of FailoverFunction: accepted at once, run in a thread."""
    event = json.loads(request.body)
    threading.Thread(target=failover_handler.handler, args=(event, LocalContext(function_name="FailoverFunction")), daemon=True).start()
    return AWSResponse(request.url, 202, {}, _Raw(b""))


def one(mode: str) -> float | None:
    with mock_aws():
        fidelity = moto_fidelity.install(moto_fidelity.Fidelity())
        lab = PgLab().install(fidelity)
        try:
            return _measure(lab, mode)
        finally:
            fidelity.backing = None
            lab.close()
            runtime.reset()
            failover_handler.reset()


def _measure(lab: PgLab, mode: str) -> float | None:
    clients = AwsClients()
    promoted: list[float] = []
    # Before any client exists: a client copies the session's handlers when it is made.
    clients.session.events.register("before-send.rds.PromoteReadReplica", lambda **_: promoted.append(time.monotonic()))
    clients.session.events.register("before-send.lambda.Invoke", _deliver)
    moto_fidelity.answer_test_dns(clients.session)
    app = App(clients, Settings(table="rds-ha-bench", failover_function=FAILOVER_FUNCTION), clock=SystemClock(), poll_seconds=1)
    runtime.use(app)
    failover_handler.reset()
    app.ensure_table()
    zone = sandbox.create_cluster(clients, datetime.now(UTC), {"orders-db-r1": ("us-east-1b", 0.0), "orders-db-r2": ("us-east-1c", 0.0)})
    secret = clients.client("secretsmanager").create_secret(Name="rds-ha/bench", SecretString=json.dumps({"username": APP_USER, "password": APP_PASSWORD}))
    app.apply(parse_config(CONFIG.format(zone=zone) + PROBE.format(arn=secret["ARN"]), "orders.yaml").clusters, "orders.yaml", "bench")
    lab.ready("orders-db", {"orders-db-r1", "orders-db-r2"})
    probe = app.health_probe()
    done = threading.Event()

    def sampling() -> None:  # HealthProbeFunction: a minute of samples per invocation, one invocation after another
        while not done.is_set():
            probe.run(None, datetime.now(UTC) + timedelta(seconds=60), on_sample=lambda _: done.is_set() and sys.exit())

    thread = threading.Thread(target=sampling, daemon=True)
    thread.start()
    time.sleep(3 + random.uniform(0, 10))  # noqa: S311 - a random phase of the probe's schedule, not a secret
    primary = lab.server("orders-db")
    failed = time.monotonic()
    if mode == "kill":
        primary.stop("immediate")
    else:
        lab.hang("orders-db")
    try:
        while not promoted and time.monotonic() - failed < 120:
            time.sleep(0.05)
    finally:
        done.set()
        if mode == "stop":
            lab.hang("orders-db", frozen=False)
        thread.join(timeout=30)
    return round(promoted[0] - failed, 2) if promoted else None


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    modes = {"both": ["stop", "kill"]}.get(sys.argv[2] if len(sys.argv) > 2 else "both", [sys.argv[2] if len(sys.argv) > 2 else "kill"])
    for mode in modes:
        seen = [one(mode) for _ in range(runs)]
        measured = [s for s in seen if s is not None]
        what = {"kill": "killed (pg_ctl stop -m immediate)", "stop": "black-holed (SIGSTOP)"}[mode]
        print(f"{what}: failure -> PromoteReadReplica sent, each run (s): {seen}; {len(seen) - len(measured)} without a promotion")
        if measured:
            print(f"detection median {statistics.median(measured):.1f} s, max {max(measured):.1f} s over {len(measured)} runs")
        else:
            print(f"detection: no promotion in {len(seen)} runs")


if __name__ == "__main__":
    main()
