"""A planned switchover under continuous writes, on real servers (the local lab: PostgreSQL from the wheel,
MariaDB from Debian's package): with switchover.fence, no write the old primary acknowledged is missing on
the new one, switch after switch; without it, writes are lost (so the fenced test can fail)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rds_ha.app import App, Settings
from rds_ha.core.clock import SystemClock
from rds_ha.core.config import ClusterConfig, ProbeConfig, parse_config
from rds_ha.local import mariadb, sandbox
from rds_ha.local.lab import APP_PASSWORD, APP_USER, PgLab
from rds_ha.probe.client import ClientReport, WriteProbe
from rds_ha.probe.model import Credentials, EngineError

from ..builders import CONFIG, Sandbox
from ..servers import have_postgres
from .test_probe import _require

# The client's timeouts; the lab's servers speak plain text on loopback.
CLIENT = ProbeConfig(
    secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:unread", tls="disable", connect_timeout_seconds=1, statement_timeout_seconds=1
)
FENCE = (
    "    switchover: {{max_lag_seconds: 30, catch_up_seconds: 30,\n"
    "      fence: {{secret_arn: '{arn}', tls: disable, connect_timeout_seconds: 1, statement_timeout_seconds: 2}}}}\n"
)
NO_FENCE = "    switchover: {max_lag_seconds: 30, catch_up_seconds: 30}\n"


def _cluster(aws: Sandbox, lab: PgLab, engine: str, fenced: bool, extra: str = "") -> tuple[App, ClusterConfig]:
    _require(have_postgres() if engine == "postgres" else mariadb.available(), engine)
    aws.zone_id = sandbox.create_cluster(
        aws.clients, datetime.now(UTC), {"orders-db-r1": ("us-east-1b", 0.0), "orders-db-r2": ("us-east-1c", 0.0)}, engine=engine, own_parameter_groups=True
    )
    secret = aws.clients.client("secretsmanager").create_secret(
        Name="rds-ha/orders/master", SecretString=f'{{"username": "{APP_USER}", "password": "{APP_PASSWORD}"}}'
    )
    extra += FENCE.format(arn=secret["ARN"]) if fenced else NO_FENCE
    text = CONFIG.format(min=2, zone=aws.zone_id, max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra=extra)
    cfg = parse_config(text, "orders.yaml").clusters[0]
    app = App(aws.clients, Settings.from_env(), clock=SystemClock(), poll_seconds=0.1)
    app.apply([cfg], "orders.yaml", "test")
    lab.ready("orders-db", {"orders-db-r1", "orders-db-r2"})
    return app, cfg


def _target(aws: Sandbox, lab: PgLab) -> Callable[[], tuple[str, int, str]]:
    """Where the writer name leads now, as a client resolving it reaches it."""

    def target() -> tuple[str, int, str]:
        named = aws.writer_targets()
        server = next((s for s in lab._all().values() if named and s.host == named[0]), None)
        if server is None:
            raise EngineError("down", f"the writer record names {named}, no server of the lab")
        return server.host, server.port, server.name

    return target


def _under_writes(aws: Sandbox, lab: PgLab, app: App, cfg: ClusterConfig, engine: str, act: Callable[[], Any]) -> tuple[ClientReport, Any]:
    """`act` (a switchover, a failover) while a client writes numbered rows through the writer name as fast as it
    can; the workflow driven to its end (the schedule's reconciles); what the client saw, and what `act` returned."""
    client = WriteProbe(engine, Credentials(APP_USER, APP_PASSWORD), CLIENT, "postgres" if engine == "postgres" else "app", _target(aws, lab))
    client.prepare()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [client.step(datetime.now(UTC)) for _ in iter(stop.is_set, True)], daemon=True)
    thread.start()
    time.sleep(0.5)
    lab.publish_lag(aws.clients, datetime.now(UTC))
    result = act()
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=30)
    for _ in range(120):
        if app.state(cfg).workflow is None:
            break
        lab.publish_lag(aws.clients, datetime.now(UTC))
        app.reconcile([cfg.name], datetime.now(UTC) + timedelta(seconds=5))
        time.sleep(0.2)
    assert app.state(cfg).workflow is None, app.history(cfg.name)[:5]
    return client.report(), result


def _switch_over(aws: Sandbox, lab: PgLab, app: App, cfg: ClusterConfig, engine: str) -> tuple[ClientReport, Any]:
    return _under_writes(aws, lab, app, cfg, engine, lambda: app.switchover(cfg, None, "test", datetime.now(UTC) + timedelta(seconds=60)))


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_fenced_switchover_loses_no_acknowledged_write_switch_after_switch(aws: Sandbox, lab: PgLab, engine: str) -> None:
    app, cfg = _cluster(aws, lab, engine, fenced=True)
    old = "orders-db"
    for _ in range(2):
        seen, result = _switch_over(aws, lab, app, cfg, engine)
        new = app.state(cfg).primary
        assert new != old and result.outcome in ("complete", "waiting", "progress"), result
        assert seen.verified and seen.acknowledged > 20, seen
        print(f"\nFIGURE {engine} fenced lost={seen.lost_writes} acked={seen.acknowledged} downtime={seen.write_downtime_seconds}")
        assert seen.lost_writes == 0, (seen.lost_sample, app.history(cfg.name)[:12])
        assert seen.failed > 0  # the fence did refuse writes for a while
        assert not lab.server(new).in_recovery()
        old = new


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_without_the_fence_the_same_switchover_loses_acknowledged_writes(aws: Sandbox, lab: PgLab, engine: str) -> None:
    app, cfg = _cluster(aws, lab, engine, fenced=False)
    seen, _ = _switch_over(aws, lab, app, cfg, engine)
    assert app.state(cfg).primary != "orders-db"
    print(f"\nFIGURE {engine} unfenced lost={seen.lost_writes} acked={seen.acknowledged} downtime={seen.write_downtime_seconds}")
    assert seen.verified and seen.lost_writes > 0, seen


def test_a_target_that_stops_replaying_gets_the_fence_lifted_and_the_old_primary_takes_writes_again(aws: Sandbox, lab: PgLab) -> None:
    app, cfg = _cluster(aws, lab, "postgres", fenced=True)
    cfg = cfg.model_copy(update={"switchover": cfg.switchover.model_copy(update={"catch_up_seconds": 2})})
    for name in ("orders-db-r1", "orders-db-r2"):
        lab.server(name).sql("SELECT pg_wal_replay_pause()")  # it receives the old primary's last writes, replays none
    client = WriteProbe("postgres", Credentials(APP_USER, APP_PASSWORD), CLIENT, "postgres", _target(aws, lab))
    client.prepare()
    lab.publish_lag(aws.clients, datetime.now(UTC))
    result = app.switchover(cfg, None, "test", datetime.now(UTC) + timedelta(seconds=30))
    assert result.outcome == "blocked" and "did not replay orders-db's final write position" in result.reason, result
    primary = lab.server("orders-db")
    assert primary.sql("SHOW default_transaction_read_only")[0][0] == "off"  # the fence lifted on the real server
    assert lab.server("orders-db-r2").in_recovery() and app.state(cfg).primary == "orders-db"
    client.step(datetime.now(UTC))
    assert client.report().acknowledged == 1  # the writer name takes writes again


def test_a_drilled_switchover_reports_no_acknowledged_write_lost_and_the_fence_to_writer_window(
    aws: Sandbox, lab: PgLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rds-ha drill --switchover --probe-dsn-secret`: its client follows the writer record through each
    instance's endpoint (--endpoint: here the lab's own addresses)."""
    from rds_ha.cli import main as cli

    from .test_cli import run

    secret = aws.clients.client("secretsmanager").create_secret(
        Name="rds-ha/orders/client", SecretString=f'{{"username": "{APP_USER}", "password": "{APP_PASSWORD}"}}'
    )
    probe = f"    probe: {{secret_arn: '{secret['ARN']}', tls: disable, connect_timeout_seconds: 1, statement_timeout_seconds: 1}}\n"
    app, cfg = _cluster(aws, lab, "postgres", fenced=True, extra=probe)
    monkeypatch.setattr(cli, "service_factory", lambda settings: app)
    lab.publish_lag(aws.clients, datetime.now(UTC))
    endpoints = [f"--endpoint={name}={s.host}:{s.port}" for name, s in lab.servers.servers.items()]
    code = run("drill", "orders", "--switchover", "--yes", "--probe-dsn-secret", secret["ARN"], *endpoints, "--probe-interval", "0.1", "--wait", "60",
               "--report-dir", str(tmp_path))  # fmt: skip
    assert code == 0, capsys.readouterr().out
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["outcome"] == "complete" and report["client"]["verified"] and report["client"]["lost_writes"] == 0, report["client"]
    assert [m["kind"] for m in report["milestones"]][:4] == ["started", "writes_frozen", "writes_sealed", "promote_issued"]
    assert 0 < report["write_downtime_seconds"] < 30, report["write_downtime_seconds"]


def _fail_over_healthy(aws: Sandbox, lab: PgLab, app: App, cfg: ClusterConfig, engine: str) -> ClientReport:
    """An unplanned failover of a primary that is alive (what a metric gap or a drill of a healthy primary does)."""
    import uuid

    from rds_ha.core.planner import FailoverRequest

    def fail_over() -> Any:
        now = datetime.now(UTC)
        request = FailoverRequest(trigger="test", failure_time=now, workflow_id=uuid.uuid4().hex[:6], automatic=False, allow_healthy_primary=True)
        return app.failover(cfg, request, now + timedelta(seconds=60))

    seen, _ = _under_writes(aws, lab, app, cfg, engine, fail_over)
    assert app.state(cfg).primary != "orders-db", app.history(cfg.name)[:8]
    return seen


@pytest.mark.parametrize("fenced", [True, False])
@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_an_unplanned_failover_of_a_live_primary_freezes_it_and_loses_fewer_writes(aws: Sandbox, lab: PgLab, engine: str, fenced: bool) -> None:
    """The freeze an unplanned failover issues after its promotion (switchover.fence configured) stops the old
    primary acknowledging writes the promoted replica never gets. Measured (FIGURE lines, BENCHMARKS.md): with it the
    old primary ends read-only; writes it took between the promotion and the freeze are still lost."""
    app, cfg = _cluster(aws, lab, engine, fenced=fenced)
    seen = _fail_over_healthy(aws, lab, app, cfg, engine)
    print(f"\nFIGURE {engine} unplanned {'freeze' if fenced else 'no-freeze'} lost={seen.lost_writes} acked={seen.acknowledged}")
    assert seen.verified and seen.acknowledged > 10, seen
    from ..fence_sql import parameter

    frozen = parameter(aws, "orders-db-params", "default_transaction_read_only" if engine == "postgres" else "read_only")
    assert (frozen == "1") == fenced, (frozen, app.history(cfg.name)[:8])  # the old primary takes no write after the freeze


def test_a_long_statement_does_not_hold_a_mariadb_fence_back(aws: Sandbox, lab: PgLab) -> None:
    """`SET GLOBAL read_only = 1`, as RDS applies the fence's parameter, waits for the statements running when it is
    issued, and new writes queue behind it: a 60 s UPDATE would hold the fence past catch_up_seconds (30 s) and the
    switchover would be refused. The transactions holding it back are ended once it has not applied within 1 s."""
    app, cfg = _cluster(aws, lab, "mariadb", fenced=True)
    primary = lab.server("orders-db")
    primary.sql("CREATE TABLE IF NOT EXISTS app.slow (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
    primary.sql("INSERT INTO app.slow VALUES (1, 0)")
    conn = primary.connect()
    blocker = threading.Thread(target=lambda: _quietly(conn, "UPDATE app.slow SET v = v + SLEEP(60) WHERE id = 1"), daemon=True)
    blocker.start()
    time.sleep(0.5)
    started = time.monotonic()

    seen, result = _switch_over(aws, lab, app, cfg, "mariadb")

    assert app.state(cfg).primary != "orders-db", (result, app.history(cfg.name)[:10])
    assert time.monotonic() - started < 30
    assert seen.lost_writes == 0, seen.lost_sample
    assert "fence_unblocked" in [h["kind"] for h in app.history(cfg.name)]


def _quietly(conn: Any, statement: str) -> None:
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    except Exception:  # noqa: BLE001, S110 - the fence ends this session: that is the point
        pass


def test_a_role_setting_that_outranks_the_postgres_fence_refuses_it_before_anything_changes(aws: Sandbox, lab: PgLab) -> None:
    """`ALTER ROLE ... SET default_transaction_read_only = off` outranks the parameter group for that role's new
    sessions: the fence would not hold for them. The switchover is refused at once, the group untouched."""
    from ..fence_sql import parameter

    app, cfg = _cluster(aws, lab, "postgres", fenced=True)
    lab.server("orders-db").sql(f"ALTER ROLE {APP_USER} SET default_transaction_read_only = off")
    lab.publish_lag(aws.clients, datetime.now(UTC))
    result = app.switchover(cfg, None, "test", datetime.now(UTC) + timedelta(seconds=60))
    assert result.outcome == "blocked" and "default_transaction_read_only=off for role app" in result.reason, result
    assert "outranks orders-db's parameter group" in result.reason
    assert app.state(cfg).primary == "orders-db" and parameter(aws, "orders-db-params") is None


def test_a_postgres_session_that_turned_the_default_off_itself_is_ended_by_the_seal(aws: Sandbox, lab: PgLab) -> None:
    """A session that ran `SET default_transaction_read_only = off` before the fence (idle, in no transaction) would
    write through it: the seal ends every client session, not only those inside a transaction."""
    app, cfg = _cluster(aws, lab, "postgres", fenced=True)
    old = lab.server("orders-db")
    session = old.connect(APP_USER, APP_PASSWORD)
    session.execute("CREATE TABLE IF NOT EXISTS after_fence (id int)")
    session.execute("SET default_transaction_read_only = off")

    _switch_over(aws, lab, app, cfg, "postgres")

    assert app.state(cfg).primary != "orders-db"
    with pytest.raises(Exception, match="terminat|closed|connection"):
        session.execute("INSERT INTO after_fence VALUES (1)")  # on the old primary: it would be a lost write
    assert old.sql("SELECT count(*) FROM after_fence") == [(0,)]
