"""Rich rendering of status, history and plans: the same reasons the planner wrote."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..app import Result
from ..core.clock import utc
from ..core.status import ClusterStatus

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")


def times(value: Any) -> Any:
    """`value` with every time in it written the one way rds-ha writes times (core.clock.utc)."""
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, str) and _ISO.match(value):
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if isinstance(value, dict):
        return {k: times(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [times(v) for v in value]
    return value


def as_json(value: Any, indent: int | None = None) -> str:
    """A command's JSON answer: its times in UTC to the second, with Z."""
    return json.dumps(times(value), indent=indent, default=str)


def _lag(value: Any) -> str:
    if value is None:
        return "-"
    return "broken (-1)" if value < 0 else f"{value:g}s"


def _bytes(value: float | None) -> str:
    if value is None:
        return ""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if value >= size:
            return f" / {value / size:.1f} {unit}"
    return f" / {value:.0f} B"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "age unknown"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"fenced {seconds / size:.0f}{unit} ago"
    return f"fenced {seconds:.0f}s ago"


_STATE_COLOUR = {"OK": "green", "ALARM": "red", "INSUFFICIENT_DATA": "yellow", "missing": "red", "not read": "yellow"}


def status(console: Console, st: ClusterStatus) -> None:
    """patronictl-list style: one table of every instance, the alarms, the names, then one verdict line."""
    console.print(f"[bold]{st.cluster}[/bold] ({st.region})  at {utc(st.at) if st.at else '-'}")
    _members(console, st)
    if st.alarms:
        alarms = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("alarm", "role", "state", "since"):
            alarms.add_column(col)
        for a in st.alarms:
            colour = _STATE_COLOUR.get(a.state, "white")
            alarms.add_row(escape(a.name), a.role, f"[{colour}]{a.state}[/{colour}]", utc(a.since) or "-")
        console.print(alarms)
    console.print(f"  writer   {st.writer.name} -> {', '.join(st.writer.targets) or '(no record)'}")
    if st.reader:
        console.print(f"  reader   {st.reader.name} -> {', '.join(st.reader.targets) or '(no record)'}")
        if st.reader_fallback:
            console.print("           no replica serves reads: the reader name points at the primary")
    if st.proxy is not None:
        _proxy(console, st)
    _state(console, st)
    if st.readiness is not None:
        readiness(console, st.readiness.as_dict(candidates=False), indent="  ")
    maz = st.multi_az
    if maz.desired is not None or maz.actual:
        want = "-" if maz.desired is None else ("on" if maz.desired else "off")
        note = " [yellow](changing)[/yellow]" if maz.in_progress else ""
        console.print(f"  multi-az {'on' if maz.actual else 'off'} (desired {want}, set by {escape(str(maz.set_by or '-'))}){note}")
    sc = st.scaling
    last = [f"last scale-{d} {at}" for d, at in (("out", sc.last_scale_out_at), ("in", sc.last_scale_in_at)) if at]
    console.print(f"  replicas min {sc.min}, max {sc.max}" + (f"; {'; '.join(last)}" if last else ""))
    head, _, rest = st.verdict.partition(":")
    colour = "green" if head == "healthy" else ("red" if head in {"degraded", "blocked"} else "yellow")
    console.print(f"[bold {colour}]{head}[/bold {colour}]:{escape(rest)}")


def _proxy(console: Console, st: ClusterStatus) -> None:
    """The proxy's target group: each target's health, and whether it serves the primary."""
    px = st.proxy
    assert px is not None
    targets = ", ".join(f"{t.instance} {t.health}" for t in px.targets) or "(no target)"
    if px.error is not None:
        targets = f"[red]targets not read[/red]: {escape(px.error)}"
    mark = "" if px.problem is None else f"  [red]{escape(px.problem)}[/red]"
    console.print(f"  proxy    {px.name} ({px.target_group}) -> {targets}{mark}")


def _state(console: Console, st: ClusterStatus) -> None:
    """What the state says: a workflow, a block, the cooldown, a pause, an acknowledgement, the lease."""
    if st.workflow:
        wf = st.workflow
        console.print(f"  [yellow]{wf.kind} in progress[/yellow] {wf.old_primary} -> {wf.new_primary}: {escape(wf.step)} (since {utc(wf.started_at)})")
    if st.blocked:
        console.print(f"  [red]blocked[/red] at {utc(st.blocked.at)}: {escape(st.blocked.reason)}")
    if st.last_failover_at:
        cool = f"; cooldown until {st.cooldown_until}" if st.cooldown_until else ""
        ack = f"; acknowledged by {escape(st.acknowledged.by)} at {utc(st.acknowledged.at)}" if st.acknowledged else ""
        console.print(f"  last failover {st.last_failover_at}{cool}{ack}")
    if st.paused:
        p = st.paused
        why = f": {escape(p.reason)}" if p.reason else ""
        console.print(f"  [yellow]paused[/yellow] by {escape(p.by)} at {utc(p.at)}{why} (automation records, changes nothing)")
    if st.lease is not None and st.at is not None:
        left = st.lease.left(st.at)
        held = f"held by {escape(st.lease.owner)} until {utc(st.lease.until)} ({left:.0f}s left)" if left > 0 else "free (the last holder's expired)"
        console.print(f"  lease    {held}")


def _members(console: Console, st: ClusterStatus) -> None:
    """Every instance: the primary, its replicas and other members (each with its verdict as a failover
    candidate now), and the fenced old primaries (their age and what they cost)."""
    verdicts = {v.instance: v for v in st.candidates}
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("instance", "role", "status", "az", "lag", "reader", "as a failover candidate"):
        table.add_column(col)
    table.add_row(f"[bold]{st.primary}[/bold]", "primary", st.primary_status, st.primary_az or "-", "-", "-", "-")
    for r in st.replicas:
        role = r.role + (" (never-promote)" if r.never_promote else "")
        v = verdicts.get(r.id)
        verdict = "-" if v is None else ("[green]eligible[/green]: " if v.eligible else "[red]not eligible[/red]: ") + escape(v.reason)
        lag = _lag(r.lag) + _bytes(r.lag_bytes) if r.role == "replica" else "-"
        reader = "-" if r.reader is None else ("[green]in[/green]" if r.reader else "[red]out[/red]")
        table.add_row(r.id, role, r.status, r.az or "-", lag, reader, verdict)
    for f in st.fenced:
        table.add_row(f.id, "fenced", f.status, f.az or "-", "-", "-", f"{_age(f.age)}, {f.instance_class}: {f.cost}")
    console.print(table)
    for out_of in (rv for rv in st.reader_set if not rv.serving):
        console.print(f"  {out_of.instance} out of the reader set: {escape(out_of.reason)}")
    if st.fenced:
        console.print(f"  old primaries are kept for their writes: rds-ha retire {st.cluster} INSTANCE (final snapshot, then delete)")


def readiness(console: Console, r: dict[str, Any], indent: str = "") -> None:
    """Could the cluster fail over now: ready, or each reason it is not (and each candidate's verdict)."""
    eligible = r["eligible_candidates"]
    if r["ready"]:
        console.print(f"{indent}failover [green]ready[/green]: {eligible} eligible candidate(s)")
    else:
        console.print(f"{indent}failover [red]not ready[/red] ({eligible} eligible candidate(s)):")
        for reason in r["reasons"]:
            console.print(f"{indent}  - {escape(reason)}")
    for warning in r.get("warnings", []):
        console.print(f"{indent}  [yellow]warning[/yellow]: {escape(warning)}")
    if r.get("proxy") and r.get("candidates") is not None:
        console.print(f"{indent}  {escape(r['proxy'])}")
    for c in r.get("candidates", []):
        mark = "[green]eligible[/green]" if c["eligible"] else "[red]not eligible[/red]"
        console.print(f"{indent}  {c['instance']}: {mark}, {escape(c['reason'])}")


def history(console: Console, entries: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("at", "event", "what and why"):
        table.add_column(col, overflow="fold")
    for h in entries:
        table.add_row(times(h["at"]), h["kind"], escape(h["message"]))
    console.print(table)


def timeline(console: Console, entries: list[dict[str, Any]], since: datetime) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("t+", "event", "what and why"):
        table.add_column(col, overflow="fold")
    for h in reversed(entries):  # history is newest first
        at = datetime.fromisoformat(h["at"])
        if at < since:
            continue
        secs = (at - since).total_seconds()
        table.add_row(f"{int(secs // 60)}m{int(secs % 60):02d}s", h["kind"], escape(h["message"]))
    console.print(table)


def plan(console: Console, result: Result, dry_run: bool, head: str = "failover") -> None:
    """A decision: outcome and reason, every candidate's verdict, the workflow's steps, what was done."""
    colour = {"start": "green", "complete": "green", "waiting": "yellow", "blocked": "red", "refused": "red"}.get(result.outcome, "white")
    head = "plan (dry run: nothing changed)" if dry_run else head
    console.print(f"[bold]{head}[/bold]: [{colour}]{result.outcome}[/{colour}] - {escape(result.reason)}")
    if result.candidates:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("candidate", "az", "lag", "verdict"):
            table.add_column(col)
        for v in result.candidates:
            mark = "[green]chosen[/green]" if v.instance == result.chosen else ("eligible" if v.eligible else "[red]not eligible[/red]")
            table.add_row(v.instance, v.az or "-", _lag(v.lag), f"{mark}: {escape(v.reason)}")
        console.print(table)
    if result.steps:
        console.print("steps:" if dry_run else "steps planned:")
        for n, step in enumerate(result.steps, 1):
            console.print(f"  {n}. {escape(step)}")
    for action in result.actions if not dry_run else ():
        console.print(f"  done: {escape(action)}")


def probe_sample(console: Console, sample: Any) -> None:
    """One SQL probe sample: the primary's verdict, then each replica's engine-side lag."""
    verdict = {True: "[green]healthy[/green]", False: "[red]UNHEALTHY[/red]", None: "[yellow]not judged[/yellow]"}[sample.primary_healthy]
    when = sample.at.isoformat(timespec="seconds")
    console.print(f"[bold]{sample.cluster}[/bold] {when}  primary [bold]{sample.primary}[/bold] {verdict}: {escape(sample.primary_reason)}")
    table = Table(show_edge=False, pad_edge=False)
    for column in ("instance", "took", "broken", "lag", "bytes behind", "why"):
        table.add_column(column)
    took = {o.instance: f"{o.seconds * 1000:.0f} ms" for o in sample.outcomes}
    for r in sample.replicas:
        broken = "-" if r.broken is None else "[red]yes[/red]" if r.broken else "no"
        behind = "-" if r.lag_bytes is None else f"{r.lag_bytes:,.0f}"
        table.add_row(r.instance, took.get(r.instance, ""), broken, _lag(r.lag_seconds), behind, escape(r.reason))
    if sample.replicas:
        console.print(table)
    for error in sample.probe_errors:
        console.print(f"  [red]probe error[/red] {escape(error)}")
