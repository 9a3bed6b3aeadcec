"""`rds-ha drill`: a failover (or switchover) on purpose, on the simulated clock with AWS's durations,
measured; its HTML report opened in headless Chromium and looked at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404 - runs the system's Chromium on a file we wrote
from pathlib import Path
from typing import Any

import pytest

from ..builders import Sandbox, build_cluster
from .test_cli import run


@pytest.fixture
def game_day(aws: Sandbox, monkeypatch: Any) -> Sandbox:
    """A healthy cluster whose AWS operations take AWS's time: promotion 4 min, a new replica 12 min."""
    from rds_ha.cli import main as cli

    build_cluster(aws)
    aws.set_alarm("OK")
    aws.fidelity.promote_seconds, aws.fidelity.create_replica_seconds = 240, 720
    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    return aws


def _report(folder: Path) -> tuple[dict[str, Any], Path]:
    (json_path,) = folder.glob("drill-orders-*.json")
    (html_path,) = folder.glob("drill-orders-*.html")
    return json.loads(json_path.read_text()), html_path


def test_failover_drill_measures_a_realistic_timeline(game_day: Sandbox, tmp_path: Path, capsys: Any) -> None:
    aws = game_day
    assert run("drill", "orders", "--yes", "--report-dir", str(tmp_path)) == 0
    report, _ = _report(tmp_path)
    assert report["outcome"] == "complete" and (report["old_primary"], report["new_primary"]) == ("orders-db", "orders-db-r2")
    marks = {m["kind"]: m["seconds"] for m in report["milestones"]}
    assert list(marks) == ["started", "promote_issued", "writer_dns", "writer_verified", "completed"]
    assert marks["started"] < 1 and marks["promote_issued"] < 1
    assert 240 <= marks["writer_dns"] <= 260  # the promotion's 4 minutes, then one poll at most
    assert marks["writer_verified"] >= marks["writer_dns"]
    assert 240 + 720 <= marks["completed"] <= 240 + 720 + 30  # new replicas take 12 more minutes
    assert report["write_downtime_seconds"] == marks["writer_dns"]
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    screen = capsys.readouterr().out
    assert "drill (failover) orders: complete" in screen and "PromoteReadReplica issued" in screen


def test_switchover_drill_and_its_refusal(game_day: Sandbox, tmp_path: Path, capsys: Any) -> None:
    aws = game_day
    # r2 lags 2 s (> switchover.max_lag_seconds 1 s) and CloudWatch shows nothing newer: refused, nothing changed.
    assert run("drill", "orders", "--switchover", "--yes", "--report-dir", str(tmp_path)) == 3
    assert "drill (switchover) orders: refused" in capsys.readouterr().out
    assert aws.promotions() == ["orders-db"]
    aws.clock.advance(60)
    aws.put_lag("orders-db-r2", 0.0)
    for old in tmp_path.iterdir():
        old.unlink()
    assert run("drill", "orders", "--switchover", "--yes", "--report-dir", str(tmp_path)) == 0
    report, _ = _report(tmp_path)
    assert report["mode"] == "switchover" and report["outcome"] == "complete"
    assert [m["kind"] for m in report["milestones"]][0] == "started"


def test_drill_dry_run_changes_nothing(game_day: Sandbox, tmp_path: Path, capsys: Any) -> None:
    aws = game_day
    assert run("drill", "orders", "--dry-run", "--report-dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "plan (dry run: nothing changed)" in out and "promote orders-db-r2" in out and "would write the timeline" in out
    assert aws.promotions() == ["orders-db"] and not list(tmp_path.iterdir())


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None and os.environ.get("RDS_HA_REQUIRE_CHROMIUM"):
        pytest.fail("headless Chromium is required here (RDS_HA_REQUIRE_CHROMIUM): .ci/run installs the Debian package")
    return found


def test_html_report_renders_its_timeline_in_headless_chromium(game_day: Sandbox, tmp_path: Path) -> None:
    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium here (CI installs it and requires it)")
    assert run("drill", "orders", "--yes", "--report-dir", str(tmp_path)) == 0
    _, html_path = _report(tmp_path)
    shot = tmp_path / "report.png"
    subprocess.run(  # noqa: S603 - fixed arguments, our own file
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,700", f"--screenshot={shot}", html_path.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1100, 700)
    colours = image.getcolors(maxcolors=1_000_000) or []
    seen = {rgb for count, rgb in colours if count > 200}
    # Each phase bar is drawn in its colour, large enough to count (five phases, five colours).
    bars = {(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B), (0x59, 0xA1, 0x4F), (0xE1, 0x57, 0x59), (0x76, 0xB7, 0xB2)}
    assert bars <= seen, f"missing bar colours: {bars - seen}"
    # The outcome line is green (complete), and the page is mostly white, not an error page.
    assert any(g > 100 and r < 80 and b < 80 for count, (r, g, b) in colours if count > 50)
    white = sum(count for count, rgb in colours if rgb == (255, 255, 255))
    assert white > image.size[0] * image.size[1] * 0.5
    shutil.copy(shot, Path(os.environ.get("RDS_HA_ARTIFACTS", tmp_path)) / "drill-report.png")
