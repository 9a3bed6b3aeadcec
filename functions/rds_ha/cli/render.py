"""Rich rendering of status, history and plans: the same reasons the planner wrote."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _lag(value: Any) -> str:
    if value is None:
        return "-"
    return "broken (-1)" if value < 0 else f"{value:g}s"


def status(console: Console, st: dict[str, Any]) -> None:
    console.print(f"[bold]{st['cluster']}[/bold] ({st['region']})")
    console.print(f"  primary  [bold]{st['primary']}[/bold]  {st['primary_status']}  {st['primary_az'] or ''}")
    console.print(f"  writer   {st['writer']['name']} -> {', '.join(st['writer']['targets']) or '(no record)'}")
    if st["reader"]:
        console.print(f"  reader   {st['reader']['name']} -> {', '.join(st['reader']['targets']) or '(no record)'}")
    if st["workflow"]:
        wf = st["workflow"]
        console.print(f"  [yellow]failover in progress[/yellow] {wf['old_primary']} -> {wf['new_primary']}: {escape(wf['step'])} (since {wf['started_at']})")
    if st["blocked"]:
        console.print(f"  [red]blocked[/red] at {st['blocked']['at']}: {escape(st['blocked']['reason'])}")
    if st["last_failover_at"]:
        cool = f"; cooldown until {st['cooldown_until']}" if st["cooldown_until"] else ""
        console.print(f"  last failover {st['last_failover_at']}{cool}")
    if st.get("paused"):
        p = st["paused"]
        console.print(
            f"  [yellow]paused[/yellow] by {escape(p['by'])} at {p['at']}"
            + (f": {escape(p['reason'])}" if p["reason"] else "")
            + " (automation records, changes nothing)"
        )
    if st.get("acknowledged"):
        console.print(f"  cooldown acknowledged by {escape(st['acknowledged']['by'])} at {st['acknowledged']['at']}")
    if st["fenced"]:
        console.print(f"  fenced   {', '.join(st['fenced'])}")
    if st.get("readiness"):
        readiness(console, st["readiness"], indent="  ")
    maz = st.get("multi_az") or {}
    if maz.get("desired") is not None or maz.get("actual"):
        want = "-" if maz.get("desired") is None else ("on" if maz["desired"] else "off")
        note = " [yellow](changing)[/yellow]" if maz.get("in_progress") else ""
        console.print(f"  multi-az {'on' if maz.get('actual') else 'off'} (desired {want}, set by {escape(str(maz.get('set_by') or '-'))}){note}")
    scaling = st.get("scaling")
    if scaling:
        last = [f"last scale-{d} {scaling[f'last_scale_{d}_at']}" for d in ("out", "in") if scaling.get(f"last_scale_{d}_at")]
        console.print(f"  replicas min {scaling['min']}, max {scaling['max']}" + (f"; {'; '.join(last)}" if last else ""))
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("instance", "role", "status", "az", "lag", "source"):
        table.add_column(col)
    for r in st["replicas"]:
        role = r["role"] + (" (never-promote)" if r["never_promote"] else "")
        table.add_row(r["id"], role, r["status"], r["az"] or "-", _lag(r["lag"]) if r["role"] == "replica" else "-", r["source"] or "-")
    if st["replicas"]:
        console.print(table)
    else:
        console.print("  (no replicas)")
    if st.get("reader_set"):
        reader = Table(box=None, pad_edge=False, show_edge=False, title=None)
        for col in ("reader set", "", "why"):
            reader.add_column(col)
        for r in st["reader_set"]:
            reader.add_row(r["id"], "[green]in[/green]" if r["serving"] else "[red]out[/red]", escape(r["reason"]))
        console.print(reader)
    if st.get("reader_fallback"):
        console.print("  no replica serves reads: the reader name points at the primary")


def readiness(console: Console, r: dict[str, Any], indent: str = "") -> None:
    """Could the cluster fail over now: ready, or each reason it is not (and each candidate's verdict)."""
    eligible = r["eligible_candidates"]
    if r["ready"]:
        console.print(f"{indent}failover [green]ready[/green]: {eligible} eligible candidate(s)")
    else:
        console.print(f"{indent}failover [red]not ready[/red] ({eligible} eligible candidate(s)):")
        for reason in r["reasons"]:
            console.print(f"{indent}  - {escape(reason)}")
    for c in r.get("candidates", []):
        mark = "[green]eligible[/green]" if c["eligible"] else "[red]not eligible[/red]"
        console.print(f"{indent}  {c['instance']}: {mark}, {escape(c['reason'])}")


def history(console: Console, entries: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("at", "event", "what and why"):
        table.add_column(col, overflow="fold")
    for h in entries:
        table.add_row(h["at"], h["kind"], escape(h["message"]))
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


def plan(console: Console, result: dict[str, Any], steps: list[str], dry_run: bool, head: str = "failover") -> None:
    colour = {"start": "green", "complete": "green", "waiting": "yellow", "blocked": "red", "refused": "red"}.get(result["outcome"], "white")
    head = "plan (dry run: nothing changed)" if dry_run else head
    console.print(f"[bold]{head}[/bold]: [{colour}]{result['outcome']}[/{colour}] - {escape(result['reason'])}")
    if result.get("candidates"):
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("candidate", "az", "lag", "verdict"):
            table.add_column(col)
        for c in result["candidates"]:
            mark = "[green]chosen[/green]" if c["instance"] == result.get("chosen") else ("eligible" if c["eligible"] else "[red]not eligible[/red]")
            table.add_row(c["instance"], c["az"] or "-", _lag(c["lag"]), f"{mark}: {escape(c['reason'])}")
        console.print(table)
    if steps:
        console.print("steps:" if dry_run else "steps planned:")
        for n, step in enumerate(steps, 1):
            console.print(f"  {n}. {escape(step)}")
    for action in result.get("actions", []) if not dry_run else []:
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
