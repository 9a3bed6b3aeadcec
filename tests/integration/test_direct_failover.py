"""The probe's direct path (probe.direct_failover) on real servers (the lab): a primary that dies is failed
over on the probe's confirmed verdict, without an alarm; a primary only the probe cannot reach, a probe cut
off from everything, and a read-only primary are never failed over; the alarm that arrives after the direct
trigger is the same failure (one promotion)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from rds_ha.app import App, Settings
from rds_ha.core.config import ClusterConfig, parse_config
from rds_ha.handlers import health_probe
from rds_ha.handlers.failover import handler as failover
from rds_ha.local import mariadb, sandbox
from rds_ha.local.lab import APP_PASSWORD, APP_USER, PgLab

from ..builders import CONFIG, Sandbox, alarm_event, build_cluster, context
from ..servers import BlackHole, have_postgres
from .test_aws_faults import _Raw
from .test_probe import _require

FAILOVER_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:FailoverFunction"
PROBE = "    probe: {{secret_arn: '{arn}', tls: disable, interval_seconds: 2, connect_timeout_seconds: 1, statement_timeout_seconds: 1}}\n"


class Lambda:
    """FailoverFunction as Lambda runs it: the asynchronous invocations the probe sends are kept, and
    delivered to the handler when the test says (the probe keeps sampling meanwhile)."""

    def __init__(self, aws: Sandbox) -> None:
        self.sent: list[dict[str, Any]] = []
        aws.clients.session.events.register("before-send.lambda.Invoke", self._accept)

    def _accept(self, request: Any, **_: Any) -> AWSResponse:
        assert "/functions/" + FAILOVER_FUNCTION in request.url or "FailoverFunction" in request.url, request.url
        self.sent.append(json.loads(request.body))
        return AWSResponse(request.url, 202, {}, _Raw(b""))

    def deliver(self) -> list[dict[str, Any]]:
        return [failover(event, context()) for event in self.sent]


def _cluster(aws: Sandbox, lab: PgLab, engine: str) -> ClusterConfig:
    _require(have_postgres() if engine == "postgres" else mariadb.available(), engine)
    replicas: dict[str, tuple[str, float | None]] = {"orders-db-r1": ("us-east-1b", 0.0), "orders-db-r2": ("us-east-1c", 0.0)}
    aws.zone_id = sandbox.create_cluster(aws.clients, aws.clock.now(), replicas, engine=engine)
    secret = aws.clients.client("secretsmanager").create_secret(
        Name="rds-ha/orders/probe", SecretString=json.dumps({"username": APP_USER, "password": APP_PASSWORD})
    )
    database = "" if engine == "postgres" else ", database: app"
    extra = PROBE.format(arn=secret["ARN"]).replace("tls: disable", "tls: disable" + database)
    text = CONFIG.format(min=2, zone=aws.zone_id, max_lag=30, cooldown=600, extra_failover="", alarms="orders-primary-down", extra=extra)
    cfg = parse_config(text, "orders.yaml").clusters[0]
    aws.service.apply([cfg], "orders.yaml", "test")
    aws.cfg = cfg
    aws.set_alarm("OK")  # CloudWatch has not noticed anything: only the probe can act
    lab.ready("orders-db", {"orders-db-r1", "orders-db-r2"})
    return cfg


def _probe(aws: Sandbox, samples: int, endpoints: dict[str, tuple[str, int]] | None = None) -> dict[str, Any]:
    """HealthProbeFunction's handler for `samples` samples, its App built as the deployed function's is
    (RDS_HA_FAILOVER_FUNCTION set: confirmed verdicts go to FailoverFunction)."""
    deployed = App(aws.clients, Settings(table=aws.service.settings.table, failover_function=FAILOVER_FUNCTION), clock=aws.clock)
    health_probe.use(deployed.health_probe(endpoints=endpoints))
    try:
        return health_probe.handler({"samples": samples}, context())
    finally:
        health_probe.reset()


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_dead_primary_is_failed_over_on_the_probes_verdict_and_the_late_alarm_is_the_same_failure(aws: Sandbox, lab: PgLab, engine: str) -> None:
    _cluster(aws, lab, engine)
    fn = Lambda(aws)
    promotes = aws.count_calls("rds", "PromoteReadReplica")
    _probe(aws, 1)
    assert fn.sent == []  # healthy: nothing sent
    lab.server("orders-db").stop("immediate")  # RDS still says available; no alarm yet
    seen = _probe(aws, 3)
    assert seen["clusters"]["orders"]["healthy"] is False and "confirmed by" in seen["clusters"]["orders"]["reason"], seen
    assert len(fn.sent) == 1, fn.sent  # once: at the second confirming sample
    detail = fn.sent[0]["detail"]
    assert detail["primary"] == "orders-db" and detail["samples"] == 2
    (result,) = fn.deliver()
    assert result["outcome"] == "complete" and result["chosen"] in ("orders-db-r1", "orders-db-r2"), result
    assert promotes[0] == 1 and aws.state().primary == result["chosen"]
    # CloudWatch's alarm goes off later: the same failure, not a second failover.
    aws.set_alarm("ALARM")
    late = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert late["outcome"] in ("ignored", "duplicate"), late
    assert promotes[0] == 1


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_primary_only_the_probe_cannot_reach_is_not_failed_over(aws: Sandbox, lab: PgLab, engine: str) -> None:
    """A cut between the probe and the primary: the replicas still stream from it."""
    _cluster(aws, lab, engine)
    fn = Lambda(aws)
    hole = BlackHole()
    try:
        seen = _probe(aws, 3, endpoints={"orders-db": ("127.0.0.1", hole.port)})
    finally:
        hole.close()
    assert seen["clusters"]["orders"]["healthy"] is False and "still receive(s) from it" in seen["clusters"]["orders"]["reason"], seen
    assert fn.sent == [] and aws.state().workflow is None and aws.state().primary == "orders-db"


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_probe_cut_off_from_everything_and_a_read_only_primary_decide_nothing(aws: Sandbox, lab: PgLab, engine: str) -> None:
    """Read-only: MySQL/MariaDB `read_only=1`; PostgreSQL's probe counts a primary in recovery as read-only,
    which a lab primary cannot become, so its read-only case is the MariaDB one."""
    _cluster(aws, lab, engine)
    fn = Lambda(aws)
    hole = BlackHole()
    try:
        cut_off = _probe(aws, 3, endpoints={name: ("127.0.0.1", hole.port) for name in ("orders-db", "orders-db-r1", "orders-db-r2")})
    finally:
        hole.close()
    assert cut_off["clusters"]["orders"]["healthy"] is None, cut_off
    if engine == "postgres":
        assert fn.sent == [] and aws.state().primary == "orders-db"
        return
    lab.server("orders-db").sql("SET GLOBAL read_only = 1")
    read_only = _probe(aws, 3)
    assert read_only["clusters"]["orders"]["healthy"] is False and "read-only" in read_only["clusters"]["orders"]["reason"], read_only
    assert fn.sent == [] and aws.state().primary == "orders-db"


def test_a_stale_or_foreign_verdict_decides_nothing(aws: Sandbox, lab: PgLab) -> None:
    from datetime import timedelta

    from rds_ha.events import ProbeVerdict, probe_verdict_event

    _cluster(aws, lab, "postgres")
    old = ProbeVerdict(cluster="orders", primary="orders-db", at=aws.clock.now() - timedelta(minutes=10), samples=2, evidence="replayed")
    assert failover(probe_verdict_event(old), context())["outcome"] == "ignored"
    stranger = ProbeVerdict(cluster="orders", primary="orders-db-r1", at=aws.clock.now(), samples=2, evidence="not the primary")
    assert failover(probe_verdict_event(stranger), context())["outcome"] == "ignored"
    assert aws.state().primary == "orders-db" and aws.state().workflow is None


def test_a_black_holed_primary_is_confirmed_by_its_replicas_silence(aws: Sandbox, lab: PgLab) -> None:
    """Every process of the primary stopped (SIGSTOP): connections stay open, nothing answers. The replicas'
    receivers still say streaming, but have heard nothing for probe.replica_silence_seconds (here 5)."""
    import time

    cfg = _cluster(aws, lab, "postgres")
    data = cfg.model_dump()
    data["probe"]["replica_silence_seconds"] = 5
    aws.service.apply([ClusterConfig.model_validate(data)], "orders.yaml", "test")
    fn = Lambda(aws)
    lab.hang("orders-db")
    try:
        early = _probe(aws, 1)
        assert "still receive(s) from it" in early["clusters"]["orders"]["reason"], early  # not silent long enough yet
        time.sleep(6)  # the server's own clock measures the silence
        _probe(aws, 2)
    finally:
        lab.hang("orders-db", frozen=False)
    assert len(fn.sent) == 1 and "confirmed by" in fn.sent[0]["detail"]["evidence"], fn.sent


PROBED = "    probe: {secret_arn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-ha/orders/probe', tls: disable, interval_seconds: 2}\n"


def _primary_healthy(aws: Sandbox, healthy: bool, at: Any) -> None:
    """One of the probe's samples of the primary, as HealthProbeFunction publishes it."""
    dims = [{"Name": "cluster", "Value": "orders"}, {"Name": "instance", "Value": "orders-db"}]
    datum = {"MetricName": "PrimaryHealthy", "Dimensions": dims, "Timestamp": at, "Value": 1.0 if healthy else 0.0, "Unit": "Count", "StorageResolution": 1}
    aws.cw().put_metric_data(Namespace="rds-ha", MetricData=[datum])


def test_a_verdict_the_probe_has_since_contradicted_decides_nothing(aws: Sandbox) -> None:
    """A verdict 20 s old (within probe.max_age_seconds) whose primary the probe's later samples found healthy,
    its alarm OK: a newer healthy sample wins (issue 28). Without that sample, the same verdict fails over."""
    from datetime import timedelta

    from rds_ha.events import ProbeVerdict, probe_verdict_event

    build_cluster(aws, extra=PROBED)
    aws.set_alarm("OK")
    at = aws.clock.now()
    _primary_healthy(aws, False, at)
    _primary_healthy(aws, True, at + timedelta(seconds=4))
    aws.clock.advance(20)
    verdict = ProbeVerdict(cluster="orders", primary="orders-db", at=at, samples=2, evidence="no answer; both replicas lost it")
    result = failover(probe_verdict_event(verdict), context())
    assert result["outcome"] == "ignored" and "healthy" in result["reason"], result
    assert aws.state().primary == "orders-db" and aws.state().workflow is None and aws.promotions() == ["orders-db"]
    later = ProbeVerdict(cluster="orders", primary="orders-db", at=aws.clock.now(), samples=2, evidence="no answer again")
    _primary_healthy(aws, False, aws.clock.now())
    assert failover(probe_verdict_event(later), context())["outcome"] == "complete"
