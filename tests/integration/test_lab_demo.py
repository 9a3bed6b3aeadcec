"""`rds-ha demo`: the lab's failover and switchover, measured as the client saw them, as one JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rds_ha.cli.main import main

from ..servers import have_postgres
from .test_probe import _require


def test_the_demo_fails_a_real_primary_over_and_switches_over_and_reports_what_the_client_saw(
    capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _require(have_postgres(), "PostgreSQL")
    for key in ("POWERTOOLS_METRICS_DISABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "RDS_HA_TABLE"):
        monkeypatch.setenv(key, "true" if key.startswith("POWERTOOLS") else "x")  # the demo sets its own; these are given back after
    monkeypatch.setenv("AWS_ENDPOINT_URL", "x")  # recorded as it was (unset), so what the demo sets is taken back
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    main(["demo", "--json", "--report-dir", str(tmp_path)])  # returns (exit 0) unless it fails
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "demo.json").read_text()) == figures  # the figures are kept
    assert figures["engine"].startswith("PostgreSQL 18")
    for what in ("failover", "switchover"):
        seen = figures[what]
        assert set(seen) == {"write_downtime_seconds", "acknowledged_writes_lost", "writes_acknowledged"}, seen
        assert seen["writes_acknowledged"] > 5 and seen["write_downtime_seconds"] >= 0, seen
    # The replicas had replayed everything the dead primary acknowledged: none of it is lost.
    assert figures["failover"]["acknowledged_writes_lost"] == 0, figures
    # The switchover's write fence: the target is promoted only once it has replayed the old primary's last write.
    assert figures["switchover"]["acknowledged_writes_lost"] == 0, figures
    assert figures["switchover"]["write_downtime_seconds"] > 0, figures  # the fence refused writes until the writer moved
    # The RDS Proxy in front of the cluster followed the primary through both (moto's proxy, the fidelity layer's rules).
    assert figures["proxy_targets"] == [figures["primary"]] and figures["primary"] != "orders-db", figures


def test_the_simulated_demo_still_runs_on_records_alone(capsys: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("POWERTOOLS_METRICS_DISABLED", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "RDS_HA_TABLE"):
        monkeypatch.setenv(key, "true" if key.startswith("POWERTOOLS") else "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "x")  # recorded as it was (unset), so what the demo sets is taken back
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    main(["demo", "--simulated", "--report-dir", str(tmp_path)])
    assert "complete: orders-db-r2 -> " in capsys.readouterr().out
    assert len(list(tmp_path.glob("drill-orders-*.html"))) == 1 and len(list(tmp_path.glob("drill-orders-*.json"))) == 1  # the report is kept
