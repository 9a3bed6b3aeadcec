"""A drill's report: JSON for tools, and one self-contained HTML page with a timeline chart (inline
SVG; no script, no external asset, so it opens anywhere, offline)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..app import DrillReport
from . import render

COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"]


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s" if seconds >= 60 else f"{seconds:.1f}s"


def chart(report: DrillReport, width: int = 960) -> str:
    """Phases between consecutive milestones as bars on one time axis, each labelled with its duration."""
    marks = report.milestones
    end = max([m.seconds for m in marks] + [1.0])
    left, right, row = 170, 180, 34
    scale = (width - left - right) / end
    height = 70 + row * len(marks)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="drill timeline">']
    previous = 0.0
    for n, mark in enumerate(marks):
        y = 30 + n * row
        x0, x1 = left + previous * scale, left + mark.seconds * scale
        colour = COLOURS[n % len(COLOURS)]
        parts.append(f'<text x="{left - 10}" y="{y + 17}" text-anchor="end" font-size="13"><title>{escape(mark.label)}</title>{escape(mark.name)}</text>')
        # At least 10 px wide: a step that took milliseconds stays visible.
        parts.append(
            f'<rect class="phase" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 10):.1f}" height="24" fill="{colour}"><title>{escape(mark.label)}</title></rect>'
        )
        took = f" (+{_fmt(mark.seconds - previous)})" if mark.seconds - previous >= 1 else ""
        parts.append(f'<text x="{max(x1, x0 + 10) + 6:.1f}" y="{y + 17}" font-size="12">t+{_fmt(mark.seconds)}{took}</text>')
        previous = mark.seconds
    axis_y = 30 + row * len(marks) + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#333"/>')
    for tick in range(0, 6):
        x = left + (width - left - right) * tick / 5
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" stroke="#333"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 20}" text-anchor="middle" font-size="12">{_fmt(end * tick / 5)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _client(report: DrillReport) -> str:
    """What the drill's client saw through the writer name: attempts, downtime, lost writes, outages."""
    seen = report.client
    if seen is None:
        return ""
    lost = str(seen["lost_writes"]) if seen["verified"] else f"not verified ({seen['verify_error']})"
    colour = "#2e7d32" if seen["verified"] and not seen["lost_writes"] else "#c62828"
    sample = f" (seq {', '.join(str(n) for n in seen['lost_sample'])})" if seen["lost_sample"] else ""
    outages = "".join(
        f"<tr><td>{escape(o['start'])}</td><td>{escape(o['end'] or 'not recovered')}</td><td>{_fmt(o['seconds'])}</td>"
        f"<td>{o['failed_attempts']}</td><td>{escape(o['first_error'])}</td></tr>"
        for o in seen["outages"]
    )
    return f"""<h2 style="font-size:16px">client through the writer name</h2>
<table class="figures">
<tr><td>writes attempted / acknowledged / failed</td><td>{seen["attempts"]} / {seen["acknowledged"]} / {seen["failed"]}</td></tr>
<tr><td>client-observed write downtime</td><td>{_fmt(seen["write_downtime_seconds"])} (longest {_fmt(seen["longest_outage_seconds"])})</td></tr>
<tr><td>acknowledged writes lost</td><td style="color:{colour};font-weight:bold">{escape(lost)}{escape(sample)}</td></tr>
<tr><td>served by</td><td>{escape(", ".join(seen["targets"]))}</td></tr>
</table>
{f'<table class="history"><tr><th>from</th><th>to</th><th>down</th><th>failed writes</th><th>first error</th></tr>{outages}</table>' if outages else ""}
"""


def html(report: DrillReport) -> str:
    rows = "".join(f"<tr><td>{escape(h['at'])}</td><td>{escape(h['kind'])}</td><td>{escape(h['message'])}</td></tr>" for h in report.history)
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    ok = report.outcome == "complete"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rds-ha drill: {escape(report.cluster)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 8px; }}
.outcome {{ font-weight: bold; color: {"#2e7d32" if ok else "#c62828"}; }}
.figures td {{ padding: 2px 16px 2px 0; }}
table.history {{ border-collapse: collapse; font-size: 12px; margin-top: 12px; }}
table.history td {{ border-top: 1px solid #ddd; padding: 3px 8px; vertical-align: top; }}
</style></head><body>
<h1>rds-ha drill: {escape(report.cluster)} ({escape(report.mode)})</h1>
<p class="outcome">{escape(report.outcome)}: {escape(report.old_primary)} &rarr; {escape(report.new_primary or "(unchanged)")}</p>
<table class="figures">
<tr><td>started</td><td>{escape(report.started_at)}</td></tr>
<tr><td>writer moved (write downtime, rds-ha + AWS)</td><td>{_fmt(report.write_downtime_seconds)}</td></tr>
<tr><td>redundancy restored</td><td>{_fmt(report.total_seconds)}</td></tr>
</table>
<h2 style="font-size:16px">timeline</h2>
{chart(report)}
{_client(report)}
<ul>{notes}</ul>
<table class="history"><tr><th>at</th><th>event</th><th>what and why</th></tr>{rows}</table>
</body></html>
"""


def write(report: DrillReport, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"drill-{report.cluster}-{report.started_at[:19].replace(':', '')}"
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    json_path.write_text(render.as_json(report.as_dict(), indent=2) + "\n")
    html_path.write_text(html(report))
    return json_path, html_path
