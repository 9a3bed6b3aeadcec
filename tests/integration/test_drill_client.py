"""`rds-ha drill --probe-dsn-secret`: a client writes and reads through the writer name while the
drill runs, against real PostgreSQL servers (primary + streaming replica on loopback). RDS and
Route 53 are moto on the simulated clock (promotion 60 s, a new replica 120 s); when moto promotes the
replica, the real one is promoted too (`pg_promote()`), as RDS stops its replication and opens it.
The client follows the writer record to the instance it names (the tunnels of `--endpoint`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.builders import REGION, Sandbox, build_cluster
from tests.integration.test_cli import run
from tests.integration.test_probe import _require, _wait_replayed
from tests.servers import have_postgres, postgres_cluster

APP_PASSWORD = "app-S3cret-pw"  # noqa: S105 - a throwaway test server's password


@pytest.fixture
def drill_day(aws: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Any, list[str]]]:
    """A one-replica cluster backed by real servers; returns the sandbox, the servers and the drill's CLI arguments."""
    _require(have_postgres(), "PostgreSQL")
    from moto.rds.models import RDSBackend

    from rds_ha.cli import main as cli

    with postgres_cluster(("orders-db-r1",)) as pg:
        pg.primary.sql(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        pg.primary.sql("GRANT CREATE ON SCHEMA public TO app")
        build_cluster(
            aws,
            {"orders-db-r1": ("us-east-1b", 0.0)},
            min_replicas=1,
            extra="    probe: {secret_arn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/x', tls: disable}\n",
        )
        aws.set_alarm("OK")
        aws.fidelity.promote_seconds, aws.fidelity.create_replica_seconds = 60, 120
        promote = RDSBackend.promote_read_replica

        def promote_the_real_one(self: RDSBackend, db_kwargs: dict[str, Any]) -> Any:
            out = promote(self, db_kwargs)
            if db_kwargs["db_instance_identifier"] == "orders-db-r1":
                pg.replicas["orders-db-r1"].sql("SELECT pg_promote(true, 30)")
            return out

        monkeypatch.setattr(RDSBackend, "promote_read_replica", promote_the_real_one)
        monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
        secret = aws.clients.client("secretsmanager", REGION).create_secret(
            Name="rds-ha/app", SecretString=json.dumps({"username": "app", "password": APP_PASSWORD})
        )
        args = [
            "--probe-dsn-secret",
            secret["ARN"],
            f"--endpoint=orders-db={pg.primary.host}:{pg.primary.port}",
            f"--endpoint=orders-db-r1={pg.replicas['orders-db-r1'].host}:{pg.replicas['orders-db-r1'].port}",
        ]
        yield aws, pg, args


def _report(folder: Path) -> dict[str, Any]:
    (path,) = folder.glob("drill-orders-*.json")
    return dict(json.loads(path.read_text()))


def test_drilling_a_healthy_primary_shows_the_writes_its_old_primary_took_after_the_promotion_are_lost(drill_day: Any, tmp_path: Path, capsys: Any) -> None:
    aws, pg, args = drill_day
    assert run("drill", "orders", "--yes", "--report-dir", str(tmp_path), *args) == 0
    report = _report(tmp_path)
    seen = report["client"]
    assert report["outcome"] == "complete" and seen["verified"]
    # The old primary never stopped answering: no downtime for the client...
    assert seen["failed"] == 0 and seen["outages"] == [] and seen["targets"] == ["orders-db", "orders-db-r1"]
    # ...but what it acknowledged while the new primary was promoted (60 s: the writer record still named it) is not
    # on the new primary. That is what a drill is for: the application must stop writing first (or accept the loss).
    promoted = next(m["at"] for m in report["milestones"] if m["kind"] == "promote_issued")
    moved = next(m["at"] for m in report["milestones"] if m["kind"] == "writer_dns")
    rows = {int(r[0]) for r in pg.replicas["orders-db-r1"].sql("SELECT seq FROM rds_ha_drill")}
    assert seen["lost_writes"] >= 60 // aws.service.poll_seconds - 1, (seen, promoted, moved)
    assert not rows & set(seen["lost_sample"])  # each lost write is really missing on the new primary
    assert seen["acknowledged"] == seen["attempts"] and len(rows) == seen["acknowledged"] - seen["lost_writes"]
    screen = capsys.readouterr().out
    assert f"lost acknowledged writes: {seen['lost_writes']}" in screen
    html = next(tmp_path.glob("drill-orders-*.html")).read_text()
    assert "client through the writer name" in html and "acknowledged writes lost" in html


def test_the_drills_client_must_write_before_the_drill_or_nothing_happens(drill_day: Any, tmp_path: Path, capsys: Any) -> None:
    aws, pg, args = drill_day
    pg.primary.sql("REVOKE CREATE ON SCHEMA public FROM app")
    assert run("drill", "orders", "--yes", "--report-dir", str(tmp_path), *args) == 2
    assert "cannot write through writer.orders.example.internal before the drill" in capsys.readouterr().err
    assert aws.promotions() == ["orders-db"] and not list(tmp_path.iterdir())
    assert run("drill", "orders", "--endpoint=orders-db=127.0.0.1:1") == 2  # a tunnel without a client to route


def test_client_sees_the_outage_of_a_stopped_primary_until_the_writer_record_moves(drill_day: Any, tmp_path: Path, capsys: Any) -> None:
    aws, pg, args = drill_day
    assert aws.cfg is not None
    client = aws.service.drill.client(
        aws.cfg,
        args[1],
        {name: (server.host, server.port) for name, server in (("orders-db", pg.primary), ("orders-db-r1", pg.replicas["orders-db-r1"]))},
    )
    client.prepare()
    client.step(aws.clock.now())
    _wait_replayed(pg)
    pg.primary.stop("immediate")  # the primary dies; its replica has every acknowledged write
    report = aws.service.drill.run(aws.cfg, "failover", "test", aws.clock.now() + timedelta(hours=1), client=client)

    seen = report.client
    assert seen is not None and report.outcome == "complete", report.reason
    assert seen["verified"] and seen["lost_writes"] == 0
    (outage,) = seen["outages"]
    # From the last acknowledged write to the first one through the moved writer record: the promotion's 60 s, one poll more at most.
    assert 60 <= outage["seconds"] <= 60 + 2 * aws.service.poll_seconds, outage
    assert seen["write_downtime_seconds"] == outage["seconds"]
    assert "connection" in outage["first_error"].lower()
    assert seen["targets"] == ["orders-db", "orders-db-r1"]
