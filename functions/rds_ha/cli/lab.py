"""`rds-ha lab up|fail|down`: a local AWS to explore, kept running between commands.

`lab up` starts, in a process of its own on loopback, moto's server with the fidelity layer (so that a
promotion completes, on the real clock, as RDS's does) and the demo's cluster applied: a primary
`orders-db` with two replicas, writer and reader names, the primary-down alarm. It then stands in for
what AWS would do around the functions:

- CloudWatch's alarm evaluation: a failover alarm is in ALARM while the instance it watches is not
  available (stopped, failed), OK otherwise (evaluated every second);
- EventBridge: a failover alarm's transition into ALARM is delivered to FailoverFunction;
- the schedule: ReconcileFunction every `--tick` seconds;
- CloudWatch's RDS metrics: a ReplicaLag datapoint of 1 s for each available replica every 30 s (moto
  emits none; without them no replica would qualify for promotion).

It prints the environment to export (also in DIR/env); from then on `rds-ha status orders`, `rds-ha
failover orders`, `rds-ha drill orders` and the AWS CLI talk to it. `lab fail INSTANCE` stops an instance
(its alarm then goes into ALARM, as a lost primary's does); `lab down` stops the server. DIR keeps
the config, the environment, the log of every delivery and run (lab.log) and the drills' reports.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess  # nosec B404 - starts this same program in the background
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ..core.errors import RdsHaError
from ..local.procs import alive

REGION = "us-east-1"
TABLE = "rds-ha-lab"
DEFAULT_DIR = Path("rds-ha-lab")
DOWN = frozenset({"stopping", "stopped", "failed"})
out = Console()

lab_app = typer.Typer(help="A local AWS to explore (moto and the fidelity layer on loopback), kept between commands.", no_args_is_help=True)
DirOption = Annotated[Path, typer.Option("--dir", help="Where the lab keeps its config, environment, log and reports.")]
JsonOption = Annotated[bool, typer.Option("--json", help="The outcome as one JSON object.")]


def _env(port: int) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "lab",
        "AWS_SECRET_ACCESS_KEY": "lab",  # nosec B105 - moto accepts any credentials
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "RDS_HA_TABLE": TABLE,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _info(folder: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((folder / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    return info if alive(int(info.get("pid", 0))) else None


@lab_app.command("up")
def up(
    folder: DirOption = DEFAULT_DIR,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Loopback port (0: a free one).")] = 0,
    promote_seconds: Annotated[float, typer.Option(min=0, max=3600, help="How long a promotion takes.")] = 20,
    replica_seconds: Annotated[float, typer.Option(min=0, max=3600, help="How long a replica's creation takes.")] = 40,
    tick: Annotated[float, typer.Option(min=1, max=600, help="Seconds between scheduled reconciles.")] = 60,
    as_json: JsonOption = False,
) -> None:
    """Start the lab in the background and print the environment to export."""
    running = _info(folder)
    if running is not None:
        raise RdsHaError(f"a lab is already running from {folder} (pid {running['pid']}, {running['endpoint']}): rds-ha lab down --dir {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ready").unlink(missing_ok=True)
    port = port or _free_port()
    args = [sys.executable, "-m", "rds_ha.cli.lab", str(folder), str(port), str(promote_seconds), str(replica_seconds), str(tick)]
    with (folder / "lab.log").open("a") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603 # nosec B603
    deadline = time.monotonic() + 90
    while not (folder / "ready").exists():
        if proc.poll() is not None:
            raise RdsHaError(f"the lab did not start (exit {proc.returncode}): see {folder / 'lab.log'}")
        if time.monotonic() > deadline:
            proc.terminate()
            raise RdsHaError(f"the lab did not start within 90 s: see {folder / 'lab.log'}")
        time.sleep(0.2)
    if as_json:
        print(json.dumps({"outcome": "done", "pid": proc.pid, "dir": str(folder), "env": _env(port), "config": str(folder / "orders.yaml")}))
        return
    out.print(f"lab up: local AWS at http://127.0.0.1:{port} (pid {proc.pid}); cluster orders applied from {folder / 'orders.yaml'}")
    out.print("export its environment (also in the file below), then explore:")
    print(f"  source {folder / 'env'}")
    for line in (
        "rds-ha status orders",
        "rds-ha lab fail orders-db        # the primary stops, its alarm goes to ALARM: watch the failover",
        "rds-ha history orders",
        "rds-ha switchover orders --yes   # and back",
        f"rds-ha lab down --dir {folder}",
    ):
        print(f"  {line}")


@lab_app.command("fail")
def fail(
    instance: Annotated[str, typer.Argument(help="The instance to fail (the primary: orders-db at first).")],
    folder: DirOption = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Fail INSTANCE (RDS shows it `failed`): the lab's CloudWatch then puts the alarm watching it into ALARM, as a lost
    primary's. A failure happens inside AWS, not through its API (RDS stops no instance that has read replicas): the
    lab's own process fails it, asked through its directory."""
    info = _info(folder)
    if info is None:
        raise RdsHaError(f"no lab is running from {folder}: rds-ha lab up --dir {folder}")
    import boto3

    session = boto3.session.Session(aws_access_key_id="lab", aws_secret_access_key="lab", region_name=REGION)  # noqa: S106 # nosec B106
    rds = session.client("rds", endpoint_url=info["endpoint"])
    try:
        rds.describe_db_instances(DBInstanceIdentifier=instance)
    except rds.exceptions.ClientError as exc:
        raise RdsHaError(f"lab fail {instance}: {exc}") from exc
    (folder / f"fail-{instance}").write_text("")
    for _ in range(100):  # the lab looks every second
        if rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]["DBInstanceStatus"] == "failed":
            break
        time.sleep(0.1)
    else:
        raise RdsHaError(f"lab fail {instance}: the lab did not fail it within 10 s (see {folder / 'lab.log'})")
    said = f"{instance} failed; its alarm goes into ALARM and is delivered to FailoverFunction within 2 s: rds-ha status orders"
    print(json.dumps({"outcome": "done", "reason": said})) if as_json else out.print(said)


@lab_app.command("down")
def down(folder: DirOption = DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Stop the lab's server; its directory (config, environment, log, reports) is kept."""
    info = _info(folder)
    if info is None:
        said = f"no lab is running from {folder}; nothing stopped"
        print(json.dumps({"outcome": "ignored", "reason": said})) if as_json else out.print(said)
        return
    os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(int(info["pid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(int(info["pid"])):  # busy past 30 s (a handler's wait): the lab holds nothing worth a clean stop
        os.kill(int(info["pid"]), signal.SIGKILL)
    (folder / "ready").unlink(missing_ok=True)
    said = f"lab down (pid {info['pid']}); {folder} keeps its config, environment, log and reports"
    print(json.dumps({"outcome": "done", "reason": said})) if as_json else out.print(said)


# -- the lab's own process ---------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {message}", flush=True)


def serve(folder: Path, port: int, promote_seconds: float, replica_seconds: float, tick: float) -> None:
    """The lab's server process: moto with the fidelity layer, the cluster, and what AWS does around it."""
    from moto.server import ThreadedMotoServer

    from ..adapters.aws import AwsClients
    from ..app import App, Settings
    from ..core.clock import SystemClock
    from ..core.config import parse_config
    from ..handlers import runtime
    from ..local import moto_fidelity, sandbox
    from .demo import CONFIG

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in lab.log
    os.environ.update(_env(port))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    clock = SystemClock()
    fidelity = moto_fidelity.install(moto_fidelity.Fidelity(clock=clock))
    clients = AwsClients()
    moto_fidelity.answer_test_dns(clients.session)
    svc = App(clients, Settings.from_env(), clock=clock)
    runtime.use(svc)
    zone = sandbox.create_cluster(clients, clock.now(), {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 1.0)}, alarm_state="OK")
    svc.ensure_table()
    text = CONFIG.format(zone=zone)
    (folder / "orders.yaml").write_text(text)
    svc.apply(parse_config(text, "orders.yaml").clusters, "orders.yaml", "rds-ha lab")
    fidelity.promote_seconds, fidelity.create_replica_seconds = promote_seconds, replica_seconds
    (folder / "env").write_text("".join(f"export {k}={v}\n" for k, v in _env(port).items()))
    (folder / "lab.json").write_text(json.dumps({"pid": os.getpid(), "port": port, "endpoint": f"http://127.0.0.1:{port}"}))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # The schedule's first run before the lab says it is up: its reader records in place, `status` says healthy.
    from ..handlers import reconcile

    reconcile.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, _context("ReconcileFunction"))
    (folder / "ready").write_text("")
    _log(f"lab up on port {port}: promotion {promote_seconds:g}s, replica creation {replica_seconds:g}s, reconcile every {tick:g}s")
    try:
        _around(svc, clients, clock, fidelity, tick, stop, folder)
    finally:
        runtime.reset()
        server.stop()
        (folder / "ready").unlink(missing_ok=True)
        _log("lab down")


def _around(svc: Any, clients: Any, clock: Any, fidelity: Any, tick: float, stop: threading.Event, folder: Path) -> None:
    """What AWS would do around the functions: fail what `lab fail` asks, deliver alarms, run the schedule, publish
    ReplicaLag."""
    from ..handlers import failover, reconcile
    from ..local import moto_fidelity, samples, sandbox

    cw = clients.client("cloudwatch", REGION)
    rds = clients.client("rds", REGION)
    seen: dict[str, Any] = {}
    last_tick = last_lag = 0.0
    while not stop.wait(1.0):
        fidelity.settle()
        now = time.monotonic()
        for request in folder.glob("fail-*"):
            request.unlink(missing_ok=True)
            moto_fidelity.set_status(request.name.removeprefix("fail-"), "failed")
            _log(f"lab: {request.name.removeprefix('fail-')} failed (rds-ha lab fail)")
        try:
            if now - last_lag >= 30:
                last_lag = now
                for db in rds.describe_db_instances()["DBInstances"]:
                    if db.get("ReadReplicaSourceDBInstanceIdentifier") and db["DBInstanceStatus"] == "available":
                        sandbox.put_lag(clients, db["DBInstanceIdentifier"], 1.0, clock.now())
            _evaluate_alarms(cw, rds)
            for cfg in svc.clusters():
                for alarm in cw.describe_alarms(AlarmNames=list(cfg.alarms.failover)).get("MetricAlarms", []):
                    key = (alarm["StateValue"], alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp"))
                    if alarm["StateValue"] == "ALARM" and seen.get(alarm["AlarmName"]) not in (None, key):
                        watched = next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == "DBInstanceIdentifier"), cfg.primary)
                        event = samples.alarm_event("eventbridge", key[1], alarm=alarm["AlarmName"], instance=watched)
                        result = failover.handler(event, _context("FailoverFunction"))
                        _log(f"EventBridge -> FailoverFunction ({alarm['AlarmName']} ALARM): {result.get('outcome')} - {result.get('reason')}")
                    seen[alarm["AlarmName"]] = key
            if now - last_tick >= tick:
                last_tick = now
                result = reconcile.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, _context("ReconcileFunction"))
                for r in result.get("results", []):
                    if r.get("outcome") not in {"steady"}:
                        _log(f"schedule -> ReconcileFunction: {r.get('cluster')}: {r.get('outcome')} - {r.get('reason')}")
        except Exception as exc:  # noqa: BLE001 - the lab keeps running; the log says what failed
            _log(f"lab: {type(exc).__name__}: {exc}")


def _context(function: str) -> Any:
    """The Lambda context a handler gets (a LocalContext stands in for Powertools' LambdaContext)."""
    from ..local.context import LocalContext

    return LocalContext(function_name=function, timeout_seconds=300)


def _evaluate_alarms(cw: Any, rds: Any) -> None:
    """CloudWatch's part: an alarm on an instance is in ALARM while that instance is down (stopped or failed;
    a modification keeps it up), OK otherwise; one on an instance that is gone is left as it is."""
    status = {db["DBInstanceIdentifier"]: db["DBInstanceStatus"] for db in rds.describe_db_instances()["DBInstances"]}
    for alarm in cw.describe_alarms().get("MetricAlarms", []):
        watched = next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == "DBInstanceIdentifier"), None)
        if watched not in status:
            continue
        want = "ALARM" if status[watched] in DOWN else "OK"
        if alarm["StateValue"] != want:
            why = f"lab: {watched} is {status[watched]}"
            cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=want, StateReason=why)
            _log(f"CloudWatch: {alarm['AlarmName']} -> {want} ({why})")


if __name__ == "__main__":  # the lab's server process, started by `rds-ha lab up`
    folder_arg, port_arg, promote_arg, replica_arg, tick_arg = sys.argv[1:6]
    serve(Path(folder_arg), int(port_arg), float(promote_arg), float(replica_arg), float(tick_arg))
