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
        self.dry_runs = 0
        aws.clients.session.events.register("before-send.lambda.Invoke", self._accept)

    def _accept(self, request: Any, **_: Any) -> AWSResponse:
        assert "/functions/" + FAILOVER_FUNCTION in request.url or "FailoverFunction" in request.url, request.url
        if request.headers.get("X-Amz-Invocation-Type") == b"DryRun" or request.headers.get("X-Amz-Invocation-Type") == "DryRun":
            self.dry_runs += 1  # the probe's once-a-run look at its path (runs nothing)
            return AWSResponse(request.url, 204, {}, _Raw(b""))
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


def test_a_probe_whose_invoke_cannot_get_through_says_so_and_check_warns(aws: Sandbox, capsys: Any) -> None:
    """HealthProbeFunction in a VPC without a Lambda endpoint: its verdicts would never reach FailoverFunction. Each
    run it tries an Invoke DryRun, publishes DirectPathReachable, and `rds-ha check` names the fix."""
    from botocore.exceptions import EndpointConnectionError

    from .test_cli import run

    secret = aws.clients.client("secretsmanager").create_secret(Name="rds-ha/orders/probe", SecretString=json.dumps({"username": "u", "password": "p"}))
    build_cluster(aws, extra=PROBE.format(arn=secret["ARN"]))
    aws.set_alarm("OK")

    fn = Lambda(aws)  # FailoverFunction, first behind no endpoint (clients keep the hooks they were made with)
    down = [True]

    def unreachable(request: Any, **_: Any) -> None:
        if down[0]:
            raise EndpointConnectionError(endpoint_url=request.url)

    aws.clients.session.events.register_first("before-send.lambda.Invoke", unreachable)
    endpoints = {i: ("127.0.0.1", 9) for i in ("orders-db", "orders-db-r1", "orders-db-r2")}
    _probe(aws, 1, endpoints=endpoints)
    capsys.readouterr()
    run("check", "orders")  # (not ready either way: no probe reading answers here)
    out = " ".join(capsys.readouterr().out.split())
    assert "the SQL probe cannot invoke FailoverFunction" in out and "com.amazonaws.us-east-1.lambda" in out, out

    down[0] = False  # the endpoint added
    aws.clock.advance(60)
    _probe(aws, 1, endpoints=endpoints)
    assert fn.dry_runs == 1 and fn.sent == []
    capsys.readouterr()
    run("check", "orders")
    assert "cannot invoke FailoverFunction" not in capsys.readouterr().out


def test_a_verdict_that_could_not_be_sent_is_sent_again_at_the_next_sample(aws: Sandbox, lab: PgLab) -> None:
    from botocore.exceptions import EndpointConnectionError

    _cluster(aws, lab, "postgres")
    fn = Lambda(aws)
    refused = [0]

    def once(request: Any, **_: Any) -> None:  # every attempt (botocore retries) of the first verdict's send fails
        if request.headers.get("X-Amz-Invocation-Type") in (b"Event", "Event") and json.loads(request.body)["detail"]["samples"] == 2:
            refused[0] += 1
            raise EndpointConnectionError(endpoint_url=request.url)

    aws.clients.session.events.register_first("before-send.lambda.Invoke", once)
    lab.server("orders-db").stop("immediate")
    _probe(aws, 4)
    assert refused[0] >= 1 and len(fn.sent) == 1, (refused, fn.sent)  # refused at the second sample, sent at the third
    assert fn.sent[0]["detail"]["samples"] == 3


def test_a_primary_read_only_under_the_clusters_own_fence_is_fenced_not_unhealthy(aws: Sandbox, lab: PgLab) -> None:
    """A fenced switchover makes a MySQL/MariaDB primary read-only on purpose: the probe says so, publishes it as
    healthy (its alarm stays OK: nobody is paged, FailoverFunction is not invoked) and sends no verdict."""
    from rds_ha.core.models import Workflow, WriteFence

    _cluster(aws, lab, "mariadb")
    fn = Lambda(aws)
    now = aws.clock.now()
    fence = WriteFence(instance="orders-db", group="orders-db-params", parameter="read_only", previous="0", requested_at=now)
    wf = Workflow(
        id="s1",
        kind="switchover",
        trigger="switchover by test",
        started_at=now,
        failure_time=now,
        old_primary="orders-db",
        new_primary="orders-db-r2",
        fence=fence,
    )
    state = aws.state()
    aws.service.deps.table.put_state(state.model_copy(update={"workflow": wf}))
    lab.server("orders-db").sql("SET GLOBAL read_only = 1")
    published: list[dict[str, Any]] = []
    aws.cw().meta.events.register("provide-client-params.cloudwatch.PutMetricData", lambda params, **_: published.extend(params["MetricData"]))
    aws.clients.client("cloudwatch", "us-east-1").meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData", lambda params, **_: published.extend(params["MetricData"])
    )

    seen = _probe(aws, 2)

    verdict = seen["clusters"]["orders"]
    assert verdict["healthy"] is True and "under the cluster's own switchover fence" in verdict["reason"], verdict
    assert fn.sent == []
    healthy = [d["Value"] for d in published if d["MetricName"] == "PrimaryHealthy"]
    assert healthy and set(healthy) == {1.0}, healthy
    # Without the fence, a read-only primary is what it was: unhealthy.
    aws.service.deps.table.put_state(aws.state().model_copy(update={"workflow": None}))
    assert _probe(aws, 1)["clusters"]["orders"]["healthy"] is False


def _missing_data(aws: Sandbox) -> None:
    """The primary-down alarm goes to ALARM for want of datapoints (missing data treated as breaching), as
    CloudWatch records such an evaluation: no recent datapoint."""
    aws.cw().set_alarm_state(
        AlarmName="orders-primary-down",
        StateValue="ALARM",
        StateReason="Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [Breaching].",
        StateReasonData=json.dumps({"version": "1.0", "queryDate": aws.clock.now().isoformat(), "recentDatapoints": [], "threshold": 1.0}),
    )


def test_a_metric_absence_alarm_fails_a_probed_primary_over_only_once_the_probe_agrees(aws: Sandbox) -> None:
    """A CloudWatch delivery gap on a healthy primary puts a missing-data-breaching alarm in ALARM. With the SQL
    probe deployed, that alone fails nothing over: the probe's word is needed; reconcile decides again each minute."""

    from rds_ha.handlers.reconcile import handler as reconcile

    build_cluster(aws, extra=PROBED)
    aws.set_alarm("OK")
    aws.clock.advance(60)
    _primary_healthy(aws, True, aws.clock.now())
    aws.clock.advance(5)
    _missing_data(aws)

    result = failover(alarm_event("eventbridge", aws.clock.now()), context())

    assert result["outcome"] == "deferred" and "for want of datapoints only" in result["reason"] and "found it healthy" in result["reason"], result
    assert aws.state().primary == "orders-db" and aws.promotions() == ["orders-db"]
    aws.clock.advance(30)
    _primary_healthy(aws, False, aws.clock.now())  # the probe now finds it unhealthy too
    aws.clock.advance(30)
    reconcile({}, context())
    assert aws.state().primary != "orders-db", aws.state()


def test_a_metric_absence_alarm_with_no_probe_word_waits(aws: Sandbox) -> None:
    build_cluster(aws, extra=PROBED)
    aws.set_alarm("OK")
    aws.clock.advance(60)
    _missing_data(aws)
    waits = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert waits["outcome"] == "deferred" and "has no recent sample of it" in waits["reason"], waits
    assert aws.state().primary == "orders-db" and aws.state().workflow is None


def test_without_the_probe_a_metric_absence_alarm_fails_over_as_before(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.set_alarm("OK")
    aws.clock.advance(60)
    _missing_data(aws)
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
