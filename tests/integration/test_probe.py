"""The SQL health probe against real servers: a PostgreSQL primary with streaming replicas
(pg_basebackup) and a MariaDB primary with a replica, on loopback; RDS, Secrets Manager and
CloudWatch on moto. The moto instances' endpoints are pointed at the local servers.

CI installs the servers (Debian packages) and sets RDS_HA_REQUIRE_DATABASES=1: there a missing
server fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from rds_ha.app.probe import HealthProbe
from rds_ha.handlers import failover as failover_handler
from rds_ha.probe.model import Sample
from tests.builders import REGION, ROOT, Sandbox, alarm_event, build_cluster, context
from tests.servers import PROBE_PASSWORD, PROBE_USER, BlackHole, have_mariadb, have_postgres, mariadb_cluster, postgres_cluster


def _require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("RDS_HA_REQUIRE_DATABASES"):
        pytest.fail(f"{what} is required here (RDS_HA_REQUIRE_DATABASES): .ci/run installs it from Debian's packages")
    pytest.skip(f"{what} is not installed here (CI installs it)")


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    _require(have_postgres(), "PostgreSQL")
    with postgres_cluster(("orders-db-r1", "orders-db-r2")) as pair:
        yield pair


@pytest.fixture(scope="module")
def maria() -> Iterator[Any]:
    _require(have_mariadb(), "MariaDB")
    with mariadb_cluster(("orders-db-r1",)) as pair:
        yield pair


def _secret(sb: Sandbox, password: str = PROBE_PASSWORD) -> str:
    sm = sb.clients.client("secretsmanager", REGION)
    # Under a customer managed key, as security teams ask: the probe then needs kms:Decrypt through Secrets Manager.
    key = sb.clients.client("kms", REGION).create_key(Description="probe secret")["KeyMetadata"]["Arn"]
    return str(sm.create_secret(Name="rds-ha/orders/probe", KmsKeyId=key, SecretString=json.dumps({"username": PROBE_USER, "password": password}))["ARN"])


def _probe_cluster(sb: Sandbox, engine: str, secret: str, replicas: tuple[str, ...] = ("orders-db-r1", "orders-db-r2"), timeouts: str = "1") -> None:
    lags: dict[str, tuple[str, float | None]] = {r: (f"us-east-1{'bcd'[n]}", 0.0) for n, r in enumerate(replicas)}
    probe = f"    probe: {{secret_arn: '{secret}', tls: disable, connect_timeout_seconds: {timeouts}, statement_timeout_seconds: {timeouts}}}\n"
    build_cluster(sb, lags, min_replicas=len(replicas), extra=probe, engine=engine)


def _pg_endpoints(pair: Any) -> dict[str, tuple[str, int]]:
    return {"orders-db": (pair.primary.host, pair.primary.port), **{name: (s.host, s.port) for name, s in pair.replicas.items()}}


def _one(probe: HealthProbe) -> Sample:
    samples = probe.sample(probe.targets(probe.configs()))
    assert len(samples) == 1
    return samples[0]


def _replica(sample: Sample, instance: str) -> Any:
    return next(v for v in sample.replicas if v.instance == instance)


def _wait_replayed(pair: Any, seconds: float = 20) -> None:
    """Until every replica has replayed everything the primary wrote."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        rows = pair.primary.sql("SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()")
        if rows[0][0] == len(pair.replicas):
            return
        time.sleep(0.05)
    raise AssertionError("replicas did not catch up")


def _metrics(sb: Sandbox, name: str, instance: str | None) -> list[float]:
    """Datapoints of one probe metric, newest first (instance None: the cluster-level series)."""
    dims = [{"Name": "cluster", "Value": "orders"}, *([{"Name": "instance", "Value": instance}] if instance else [])]
    resp = sb.cw().get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": "rds-ha", "MetricName": name, "Dimensions": dims},
                    "Period": 10,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=sb.clock.now() - timedelta(minutes=10),
        EndTime=sb.clock.now() + timedelta(minutes=1),
    )
    return [float(v) for v in resp["MetricDataResults"][0]["Values"]]


def _put_metric_requests(sb: Sandbox) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    sb.cw().meta.events.register("provide-client-params.cloudwatch.PutMetricData", lambda params, **_: seen.append(params))
    return seen


# -- PostgreSQL -------------------------------------------------------------------------------------


def test_healthy_postgres_primary_and_caught_up_replicas_land_as_high_resolution_metrics(aws: Sandbox, pg: Any) -> None:
    _probe_cluster(aws, "postgres", _secret(aws))
    sent = _put_metric_requests(aws)
    pg.primary.sql("INSERT INTO ticks (pad) VALUES ('a')")
    probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg))
    # The server writes WAL of its own now and then (a running-transactions record every 15 s): a sample
    # taken right then sees a few bytes not replayed yet. Caught up means caught up in one of a few samples.
    for _ in range(5):
        _wait_replayed(pg)
        sample = _one(probe)
        if all(_replica(sample, r).lag_bytes == 0 for r in ("orders-db-r1", "orders-db-r2")):
            break
        aws.clock.advance(10)
        sent.clear()

    assert sample.primary_healthy is True, sample.primary_reason
    for name in ("orders-db-r1", "orders-db-r2"):
        verdict = _replica(sample, name)
        assert (verdict.broken, verdict.lag_seconds, verdict.lag_bytes) == (False, 0.0, 0.0), verdict.reason
    # One PutMetricData for the cluster, every datapoint high-resolution, named and dimensioned as documented.
    assert len(sent) == 1 and sent[0]["Namespace"] == "rds-ha"
    assert {d["StorageResolution"] for d in sent[0]["MetricData"]} == {1}
    assert {(d["MetricName"], tuple(x["Value"] for x in d["Dimensions"])) for d in sent[0]["MetricData"]} == {
        ("PrimaryHealthy", ("orders", "orders-db")),
        ("PrimaryHealthy", ("orders",)),  # the cluster's primary, whichever it is: an alarm that survives failovers
        *((m, ("orders", r)) for m in ("ReplicationBroken", "ReplicaLagSeconds", "ReplicaLagBytes") for r in ("orders-db-r1", "orders-db-r2")),
    }
    assert set(_metrics(aws, "PrimaryHealthy", "orders-db")) == {1.0}  # one datapoint per sample taken
    assert set(_metrics(aws, "PrimaryHealthy", None)) == {1.0}
    assert set(_metrics(aws, "ReplicationBroken", "orders-db-r2")) == {0.0}


def test_paused_replay_shows_growing_lag_in_seconds_and_bytes(aws: Sandbox, pg: Any) -> None:
    _probe_cluster(aws, "postgres", _secret(aws))
    probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg))
    r2 = pg.replicas["orders-db-r2"]
    # A transaction replayed first: a replica that never replayed one has no replay time to measure from
    # (the test must not depend on which tests ran before it on its worker).
    pg.primary.sql("INSERT INTO ticks (pad) VALUES ('before')")
    _wait_replayed(pg)
    r2.sql("SELECT pg_wal_replay_pause()")
    try:
        pg.primary.sql("INSERT INTO ticks (pad) SELECT repeat('x', 100) FROM generate_series(1, 100)")
        time.sleep(1.1)
        first = _replica(_one(probe), "orders-db-r2")
        pg.primary.sql("INSERT INTO ticks (pad) SELECT repeat('y', 100) FROM generate_series(1, 1000)")
        time.sleep(1.1)
        aws.clock.advance(10)
        second_sample = _one(probe)
        second = _replica(second_sample, "orders-db-r2")
    finally:
        r2.sql("SELECT pg_wal_replay_resume()")
    assert first.broken is False and "paused" in first.reason
    assert first.lag_bytes is not None and first.lag_bytes > 0
    assert first.lag_seconds is not None and first.lag_seconds >= 1
    assert second.lag_bytes is not None and second.lag_bytes > first.lag_bytes
    assert second.lag_seconds is not None and second.lag_seconds > first.lag_seconds
    # The replica that replays normally is not behind.
    assert _replica(second_sample, "orders-db-r1").lag_bytes == 0
    assert max(_metrics(aws, "ReplicaLagBytes", "orders-db-r2")) == second.lag_bytes


def test_failover_promotes_the_replica_with_the_most_data_by_the_probe_not_by_cloudwatch(aws: Sandbox, pg: Any) -> None:
    # CloudWatch says r2 is the least lagged; the engine says r2 has not replayed what r1 has.
    _probe_cluster(aws, "postgres", _secret(aws))
    aws.put_lag("orders-db-r1", 3.0)
    aws.put_lag("orders-db-r2", 0.0)
    probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg))
    r2 = pg.replicas["orders-db-r2"]
    r2.sql("SELECT pg_wal_replay_pause()")
    try:
        pg.primary.sql("INSERT INTO ticks (pad) SELECT repeat('z', 100) FROM generate_series(1, 500)")
        until = time.monotonic() + 10
        while pg.primary.sql("SELECT replay_lsn = pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = 'orders-db-r1'")[0][0] is not True:
            assert time.monotonic() < until, "r1 did not catch up"
            time.sleep(0.05)
        sample = _one(probe)
    finally:
        r2.sql("SELECT pg_wal_replay_resume()")
    assert _replica(sample, "orders-db-r1").lag_bytes == 0
    assert (_replica(sample, "orders-db-r2").lag_bytes or 0) > 0

    result = failover_handler.handler(alarm_event("eventbridge", aws.clock.now()), context())

    assert aws.promotions() == ["orders-db", "orders-db-r1"], result
    assert "most data" in result["reason"]
    r1 = next(c for c in result["candidates"] if c["instance"] == "orders-db-r1")
    assert "SQL probe" in r1["reason"]


def test_switchover_on_an_idle_postgres_source_goes_ahead_on_the_probes_word(aws: Sandbox, pg: Any) -> None:
    # An idle PostgreSQL source: CloudWatch's ReplicaLag reads minutes, the engine says nothing is pending.
    _probe_cluster(aws, "postgres", _secret(aws))
    assert aws.cfg is not None
    aws.put_lag("orders-db-r1", 300.0)
    aws.put_lag("orders-db-r2", 300.0)
    refused = aws.service.switchover(aws.cfg, None, "test", aws.clock.now() + timedelta(minutes=5), dry_run=True)
    assert refused.outcome == "refused" and "orders-db-r1: lag 300s > max 30s" in refused.reason  # CloudWatch alone never lets it go

    _wait_replayed(pg)
    _one(HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg)))
    result = aws.service.switchover(aws.cfg, None, "test", aws.clock.now() + timedelta(minutes=30))

    assert result.outcome == "complete", result.reason
    assert "SQL probe" in next(c.reason for c in result.candidates if c.instance == result.chosen)


def test_an_idle_postgres_source_keeps_its_replicas_in_the_reader_set_on_the_probes_word(aws: Sandbox, pg: Any) -> None:
    from rds_ha.handlers.reconcile import handler as reconcile_handler

    _probe_cluster(aws, "postgres", _secret(aws), timeouts="5")  # this test needs the probe's answer, even on a loaded machine
    aws.set_alarm("OK")
    reconcile_handler({}, context())  # both replicas caught up (CloudWatch 0 s): both serve reads
    assert sorted(aws.reader_targets()) == sorted([aws.endpoint("orders-db-r1"), aws.endpoint("orders-db-r2")])
    # The source goes idle: CloudWatch reads 300 s, over reader_max_lag_seconds (30); the engine says 0.
    aws.clock.advance(60)
    aws.put_lag("orders-db-r1", 300.0)
    aws.put_lag("orders-db-r2", 300.0)
    _wait_replayed(pg)
    sample = _one(HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg)))
    assert not sample.probe_errors and all(r.answered for r in sample.replicas), sample  # the reading this test is about
    reconcile_handler({}, context())
    assert sorted(aws.reader_targets()) == sorted([aws.endpoint("orders-db-r1"), aws.endpoint("orders-db-r2")])
    # Without a recent probe reading (the probe stopped), CloudWatch's word holds again: they leave.
    aws.clock.advance(120)
    aws.put_lag("orders-db-r1", 300.0)
    aws.put_lag("orders-db-r2", 300.0)
    reconcile_handler({}, context())
    assert aws.reader_targets() == [aws.endpoint("orders-db")]


def test_stopped_primary_is_unhealthy_within_the_timeout_and_its_replica_is_not_broken(aws: Sandbox) -> None:
    _require(have_postgres(), "PostgreSQL")
    with postgres_cluster(("orders-db-r1",)) as own:
        _probe_cluster(aws, "postgres", _secret(aws), replicas=("orders-db-r1",))
        probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(own))
        own.primary.stop("immediate")
        started = time.monotonic()
        sample = _one(probe)
        took = time.monotonic() - started

    assert sample.primary_healthy is False, sample.primary_reason
    assert took < 1 + 2 * 1 + 1 + 1, f"a sample must end within the check's budget, took {took:.1f}s"  # behaviour: bounded, not speed
    # The replica's source is gone: its receiver stops by design, that is not broken replication.
    verdict = _replica(sample, "orders-db-r1")
    assert verdict.broken is False and verdict.lag_bytes == 0, verdict.reason
    assert "furthest replica" in verdict.reason
    assert _metrics(aws, "PrimaryHealthy", "orders-db") == [0.0]


def test_the_probe_follows_a_failover_within_one_tick(aws: Sandbox) -> None:
    _require(have_postgres(), "PostgreSQL")
    with postgres_cluster(("orders-db-r1",)) as own:
        _probe_cluster(aws, "postgres", _secret(aws), replicas=("orders-db-r1",))
        probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(own))
        own.primary.stop("immediate")
        seen: list[Sample] = []

        def fail_over_after_the_first(samples: list[Sample]) -> None:
            seen.extend(samples)
            if len(seen) == 1:  # the alarm fires; rds-ha promotes the replica (and so does RDS, for real)
                own.replicas["orders-db-r1"].sql("SELECT pg_promote(true, 30)")
                failover_handler.handler(alarm_event("eventbridge", aws.clock.now()), context())

        probe.run(None, aws.clock.now() + timedelta(minutes=1), on_sample=fail_over_after_the_first, max_samples=2)

    assert (seen[0].primary, seen[0].primary_healthy) == ("orders-db", False)
    # The next tick probes the new primary (re-described because the old one was unhealthy), not the dead one.
    assert (seen[1].primary, seen[1].primary_healthy) == ("orders-db-r1", True), seen[1].primary_reason


def test_black_holed_primary_does_not_hang_the_probe(aws: Sandbox, pg: Any) -> None:
    _probe_cluster(aws, "postgres", _secret(aws))
    hole = BlackHole()
    try:
        endpoints = {**_pg_endpoints(pg), "orders-db": ("127.0.0.1", hole.port)}
        started = time.monotonic()
        sample = _one(HealthProbe(aws.service.deps, endpoints=endpoints))
        took = time.monotonic() - started
    finally:
        hole.close()
    assert sample.primary_healthy is False
    # libpq's connect_timeout is whole seconds, at least 2; the sample's own deadline is the budget.
    assert took < 6, f"the probe waited {took:.1f}s on a port that never answers"


def test_a_probe_that_reaches_nothing_withholds_its_judgement(aws: Sandbox) -> None:
    _probe_cluster(aws, "postgres", _secret(aws))
    hole = BlackHole()
    try:
        endpoints = {name: ("127.0.0.1", hole.port) for name in ("orders-db", "orders-db-r1", "orders-db-r2")}
        sample = _one(HealthProbe(aws.service.deps, endpoints=endpoints))
    finally:
        hole.close()
    assert sample.primary_healthy is None and "cut off" in sample.primary_reason
    assert _metrics(aws, "PrimaryHealthy", "orders-db") == []


def test_wrong_credentials_are_a_probe_error_not_a_dead_primary_and_a_rotated_secret_is_reread(aws: Sandbox, pg: Any) -> None:
    secret = _secret(aws, password="not-the-password")
    _probe_cluster(aws, "postgres", secret)
    probe = HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg))
    sample = _one(probe)
    assert sample.primary_healthy is None and sample.probe_errors
    assert _metrics(aws, "PrimaryHealthy", "orders-db") == []
    assert _metrics(aws, "ProbeError", "orders-db") == [1.0]
    assert all("not-the-password" not in e for e in sample.probe_errors)

    aws.clients.client("secretsmanager", REGION).put_secret_value(
        SecretId=secret, SecretString=json.dumps({"username": PROBE_USER, "password": PROBE_PASSWORD})
    )
    aws.clock.advance(10)
    assert _one(probe).primary_healthy is True


def test_the_scheduled_handler_samples_until_its_minute_is_over_and_rejects_bad_events(aws: Sandbox, pg: Any) -> None:
    from rds_ha.core.errors import InvalidEventError
    from rds_ha.handlers import health_probe

    _probe_cluster(aws, "postgres", _secret(aws))
    health_probe.use(HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg)))
    try:
        for bad in ([], {"clusters": "orders"}, {"samples": 0}, {"samples": True}):
            with pytest.raises(InvalidEventError):
                health_probe.handler(bad, context())  # type: ignore[arg-type]
        # The simulated clock moves 10 s per tick: a minute's run is six samples, then the next invocation.
        result = health_probe.handler(json.loads((ROOT / "events" / "reconcile-schedule.json").read_text()), context(timeout=90))
    finally:
        health_probe.reset()
    assert result["samples"] == 6
    assert result["clusters"]["orders"]["healthy"] is True
    assert len(_metrics(aws, "PrimaryHealthy", "orders-db")) == 6


# -- MariaDB ----------------------------------------------------------------------------------------


def _maria_endpoints(pair: Any) -> dict[str, tuple[str, int]]:
    return {"orders-db": (pair.primary.host, pair.primary.port), **{name: (s.host, s.port) for name, s in pair.replicas.items()}}


def test_mariadb_healthy_then_stopped_replication_is_broken(aws: Sandbox, maria: Any) -> None:
    _probe_cluster(aws, "mariadb", _secret(aws), replicas=("orders-db-r1",))
    probe = HealthProbe(aws.service.deps, endpoints=_maria_endpoints(maria))
    replica = maria.replicas["orders-db-r1"]
    maria.primary.sql("INSERT INTO app.ticks (pad) VALUES ('a')")
    until = time.monotonic() + 10
    while True:
        sample = _one(probe)
        verdict = _replica(sample, "orders-db-r1")
        if verdict.lag_bytes == 0 or time.monotonic() > until:
            break
        time.sleep(0.1)
    assert sample.primary_healthy is True, sample.primary_reason
    assert (verdict.broken, verdict.lag_seconds, verdict.lag_bytes) == (False, 0.0, 0.0), verdict.reason

    replica.sql("STOP SLAVE SQL_THREAD")
    try:
        maria.primary.sql("INSERT INTO app.ticks (pad) VALUES ('b')")
        aws.clock.advance(10)
        stopped = _replica(_one(probe), "orders-db-r1")
        replica.sql("STOP SLAVE")
        aws.clock.advance(10)
        all_stopped = _replica(_one(probe), "orders-db-r1")
    finally:
        replica.sql("START SLAVE")
    assert stopped.broken is True and "apply stopped" in stopped.reason
    assert all_stopped.broken is True
    # Newest first: the two samples with replication stopped, then the healthy one.
    assert _metrics(aws, "ReplicationBroken", "orders-db-r1") == [1.0, 1.0, 0.0]


def test_mariadb_primary_that_is_read_only_is_unhealthy(aws: Sandbox, maria: Any) -> None:
    _probe_cluster(aws, "mariadb", _secret(aws), replicas=("orders-db-r1",))
    probe = HealthProbe(aws.service.deps, endpoints=_maria_endpoints(maria))
    maria.primary.sql("SET GLOBAL read_only = 1")
    try:
        sample = _one(probe)
    finally:
        maria.primary.sql("SET GLOBAL read_only = 0")
    assert sample.primary_healthy is False and "read-only" in sample.primary_reason


# -- the operator's command -------------------------------------------------------------------------


def test_probe_command_shows_the_verdicts_and_exits_by_health(aws: Sandbox, pg: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rds_ha.cli import main as cli
    from tests.integration.test_cli import run

    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    _probe_cluster(aws, "postgres", _secret(aws))
    pg.primary.sql("INSERT INTO ticks (pad) VALUES ('cli')")
    _wait_replayed(pg)
    tunnels = [f"--endpoint={name}={host}:{port}" for name, (host, port) in _pg_endpoints(pg).items()]
    assert run("probe", "orders", *tunnels) == 0
    shown = capsys.readouterr().out
    assert "primary orders-db healthy: answers and is writable" in shown
    assert "orders-db-r1" in shown and "0s, 0 bytes behind the primary" in shown
    assert _metrics(aws, "PrimaryHealthy", "orders-db") == []  # looking is not reporting
    assert run("probe", "orders", *tunnels, "--publish") == 0
    assert _metrics(aws, "PrimaryHealthy", "orders-db") == [1.0]

    hole = BlackHole()
    try:
        assert run("probe", "orders", *tunnels, f"--endpoint=orders-db=127.0.0.1:{hole.port}", "--json") == 3
    finally:
        hole.close()
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["primary_healthy"] is False

    assert run("alarms", "render", "orders") == 0  # the protection stack then alarms on PrimaryHealthy too
    assert "UseHealthProbe=true" in capsys.readouterr().out.split()

    assert run("probe", "orders", "--endpoint=orders-db") == 2
    assert "expected INSTANCE=HOST:PORT" in capsys.readouterr().err
    assert run("probe", "billing") == 2
    assert "no cluster named 'billing'" in capsys.readouterr().err


def test_tls_verifies_the_server_by_default_and_a_missing_ca_bundle_is_said_in_one_line(aws: Sandbox, pg: Any, monkeypatch: Any, tmp_path: Any) -> None:
    """verify-full is the default (require lets anyone on the path answer as the primary): the probe checks the
    server against RDS's CA bundle. Without the bundle it says so and withholds its verdict (no failover)."""
    monkeypatch.setenv("RDS_HA_RDS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    secret = _secret(aws)
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 0.0)}, min_replicas=1, extra=f"    probe: {{secret_arn: '{secret}'}}\n")
    assert aws.cfg is not None and aws.cfg.probe is not None and aws.cfg.probe.tls == "verify-full"
    sample = _one(HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg)))
    assert sample.primary_healthy is None  # withheld, not "down"
    assert any(f"CA bundle {tmp_path / 'missing.pem'} not found" in e for e in sample.probe_errors), sample.probe_errors

    # With a bundle present, the local server (no TLS) is refused: never silently in plain text.
    (tmp_path / "ca.pem").write_text("")
    monkeypatch.setenv("RDS_HA_RDS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    aws.clock.advance(10)
    sample = _one(HealthProbe(aws.service.deps, endpoints=_pg_endpoints(pg)))
    assert sample.primary_healthy is None and sample.probe_errors
