"""`rds-ha demo`: a failover on an embedded moto server, through the real handler, in seconds.

Simulated time: promotion and replica creation take realistic minutes on a simulated clock (the
fidelity layer), and the schedule's reconcile runs every simulated minute, so the timeline reads
as it would on AWS without waiting for it.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from ..adapters.aws import AwsClients
from ..app import App, Settings
from ..core.config import ClusterConfig, parse_config
from ..handlers import failover as failover_handler
from ..handlers import runtime
from ..local import moto_fidelity, samples, sandbox
from ..local.clock import SimClock
from . import render
from . import report as drill_report
from .invoke import invoke

REGION = "us-east-1"
CONFIG = """\
clusters:
  - name: orders
    region: us-east-1
    primary: orders-db
    replicas: {{min: 2, max: 4}}
    dns: {{zone_id: {zone}, writer: writer.orders.example.internal, reader: reader.orders.example.internal, ttl: 5}}
    failover: {{max_lag_seconds: 30, cooldown_seconds: 600}}
    alarms:
      failover: [orders-primary-down]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in the demo
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def run_demo(console: Console, promote_seconds: float, replica_seconds: float, report_dir: Path) -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="demo",
        # moto accepts any credentials
        AWS_SECRET_ACCESS_KEY="demo",  # noqa: S106 # nosec B106
        AWS_DEFAULT_REGION=REGION,
        RDS_HA_TABLE="rds-ha-demo",
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    server, endpoint = _start_moto()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        clock = SimClock()
        fidelity = moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
        clients = AwsClients()  # the local lab's own: it builds the cluster the demo fails over
        moto_fidelity.answer_test_dns(clients.session)
        svc = App(clients, Settings.from_env(), clock=clock)
        runtime.use(svc)
        failover_handler.reset()
        console.rule(f"[bold]rds-ha demo[/bold] - local AWS (moto) at {endpoint}")
        cfg = _setup(console, svc, clients, clock)
        # From here on AWS operations take time, as they do on AWS.
        fidelity.promote_seconds, fidelity.create_replica_seconds = promote_seconds, replica_seconds
        svc.reconcile(["orders"], clock.now())  # the schedule's first run builds the reader set
        render.status(console, svc.status(cfg))
        _fail(console, svc, clients, clock, fidelity)
        fresh = _caught_up(console, svc, clients, clock)
        _drill(console, svc, clients, clock, fresh, report_dir)
    finally:
        runtime.reset()
        failover_handler.reset()
        server.stop()


def _setup(console: Console, svc: App, clients: AwsClients, clock: SimClock) -> ClusterConfig:
    zone = sandbox.create_cluster(clients, clock.now(), {"orders-db-r1": ("us-east-1b", 12.0), "orders-db-r2": ("us-east-1c", 2.0)})
    svc.ensure_table()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.yaml"
        path.write_text(CONFIG.format(zone=zone))
        svc.apply(parse_config(path.read_text(), "orders.yaml").clusters, "orders.yaml", "demo")
    console.print("[bold]1.[/bold] a primary with two replicas (ReplicaLag 12 s and 2 s), writer DNS, the config applied:")
    console.print(CONFIG.format(zone=zone), style="dim", markup=False)
    return svc.cluster("orders")


def _fail(console: Console, svc: App, clients: AwsClients, clock: SimClock, fidelity: Any) -> None:
    console.print()
    console.print("[bold]2.[/bold] the primary fails; its alarm goes to ALARM and EventBridge delivers the event to FailoverFunction")
    started = clock.now()
    moto_fidelity.set_status("orders-db", "failed", REGION)
    clients.client("cloudwatch", REGION).set_alarm_state(AlarmName="orders-primary-down", StateValue="ALARM", StateReason="demo: no connections")
    result = invoke("FailoverFunction", samples.alarm_event("eventbridge", started))
    console.print(f"    handler returned: [bold]{result['outcome']}[/bold] - {result['reason']}")
    cfg, runs = svc.cluster("orders"), 0
    while svc.state(cfg).workflow is not None and runs < 120:
        clock.advance(60)  # ReconcileFunction's schedule: rate(1 minute)
        invoke("ReconcileFunction", SCHEDULED)
        runs += 1
    fidelity.settle()
    console.print(f"    then {runs} scheduled reconcile run(s) finished it")
    console.print()
    console.print("[bold]3.[/bold] timeline (simulated clock: promotion takes minutes, new replicas longer):")
    render.timeline(console, svc.history("orders"), started)
    console.print()
    console.print("[bold]4.[/bold] status after the failover (reads go to the new primary until a new replica shows caught up):")
    render.status(console, svc.status(cfg))


def _caught_up(console: Console, svc: App, clients: AwsClients, clock: SimClock) -> list[str]:
    console.print()
    console.print("[bold]5.[/bold] CloudWatch reports ReplicaLag for the new replicas (1 s and 45 s); the next scheduled reconcile:")
    cfg = svc.cluster("orders")
    fresh = sorted(v.instance for v in svc.status(cfg).reader_set)
    for replica, lag in zip(fresh, (1.0, 45.0), strict=False):
        sandbox.put_lag(clients, replica, lag, clock.now())
    clock.advance(60)
    invoke("ReconcileFunction", SCHEDULED)
    render.status(console, svc.status(cfg))
    return fresh


def _drill(console: Console, svc: App, clients: AwsClients, clock: SimClock, fresh: list[str], report_dir: Path) -> None:
    console.print()
    console.print("[bold]6.[/bold] a game day: `rds-ha drill orders --switchover` back to a caught-up replica (ReplicaLag 0 s):")
    clock.advance(600)
    sandbox.put_lag(clients, fresh[0], 0.0, clock.now() - timedelta(seconds=5))
    report = svc.drill.run(svc.cluster("orders"), "switchover", "demo", clock.now() + timedelta(hours=1))
    for mark in report.milestones:
        console.print(f"    t+{mark.seconds:>7.1f}s  {mark.label}")
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = drill_report.write(report, report_dir)
    console.print(f"    {report.outcome}: {report.old_primary} -> {report.new_primary}; kept as {json_path} and {html_path} (open it offline)")
