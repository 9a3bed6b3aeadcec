"""One primary, always: runs that stall past their lease, operators acting at the same moment.

Each stall is a real slow AWS call on the simulated clock (its first attempt takes longer than the
lease, then is retried or goes through), while another run acts in another thread meanwhile. What is
asserted is what a user would check afterwards: RDS, Route 53 and the state table.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from rds_ha.app.lease import LEASE_SECONDS
from rds_ha.core.errors import InvalidEventError
from rds_ha.handlers.dns_sync import handler as dns_sync
from rds_ha.handlers.failover import handler as failover
from rds_ha.handlers.multi_az import handler as multi_az
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.handlers.scaling import handler as scaling
from rds_ha.local import moto_fidelity, samples, sandbox

from ..builders import Sandbox, alarm_event, build_cluster, context
from .test_cli import run
from .test_read_capacity import WEST, _fail, alarm, capacity_cluster, reader_ids, west_replicas, with_cross_region


def _primary_fails_and_fails_over(aws: Sandbox, lags: dict[str, float] | None = None, expect: str = "orders-db-r2") -> None:
    for rid, seconds in (lags or {"orders-db-r1": 12.0, "orders-db-r2": 2.0}).items():
        aws.put_lag(rid, seconds)
    moto_fidelity.set_status("orders-db", "failed")
    aws.clock.advance(1)
    aws.set_alarm("ALARM")
    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "complete" and result["chosen"] == expect, result


def _writer_edited_by_hand(aws: Sandbox) -> None:
    change = {"Name": "writer.orders.example.internal", "Type": "CNAME", "TTL": 5, "ResourceRecords": [{"Value": "x.example"}]}
    aws.r53().change_resource_record_sets(HostedZoneId=aws.zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": change}]})


def test_a_reconcile_stalled_past_its_lease_never_points_the_writer_back_at_the_old_primary(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.set_alarm("OK")
    _writer_edited_by_hand(aws)  # reconcile's next sweep repairs that drift
    # Its read of the writer record takes two minutes; meanwhile the primary dies and fails over.
    aws.slow_attempt("route53", "ListResourceRecordSets", LEASE_SECONDS + 30, lambda: _primary_fails_and_fails_over(aws), fail=False)

    result = reconcile({}, context())["results"][0]

    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert aws.instance("orders-db-r1") is None  # the orphan the failover deleted...
    assert "orders-db-r1" not in reader_ids(aws)  # ...is not put back into the reader set
    assert aws.state().primary == "orders-db-r2"
    assert result["outcome"] == "lease_lost", result
    assert "lease_lost" in aws.history_kinds()


def test_a_scale_in_delayed_past_its_lease_never_deletes_the_replica_a_failover_promoted(aws: Sandbox) -> None:
    replicas = {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 12.0), "orders-db-r3": ("us-east-1a", 3.0)}
    capacity_cluster(aws, replicas, min_replicas=1)
    reconcile({}, context())

    def primary_fails() -> None:
        # By the failure r1 and r3 fell behind: the failover promotes r2, the replica scale-in chose.
        _primary_fails_and_fails_over(aws, {"orders-db-r1": 50.0, "orders-db-r2": 12.0, "orders-db-r3": 50.0})

    # Scale-in picks r2 (most lagging); its DeleteDBInstance times out after two minutes and is retried.
    aws.slow_attempt("rds", "DeleteDBInstance", LEASE_SECONDS + 30, primary_fails)

    result = scaling(alarm(aws, "orders-replicas-cpu-low"), context())

    new = aws.instance("orders-db-r2")
    assert new is not None and new["DBInstanceStatus"] == "available" and not new.get("ReadReplicaSourceDBInstanceIdentifier")
    assert new["DeletionProtection"] is True  # a stale delete would fail at RDS too
    assert aws.state().primary == "orders-db-r2"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert result["outcome"] == "lease_lost", result


def test_an_operators_ack_during_a_failover_does_not_break_it(aws: Sandbox, capsys: Any) -> None:
    build_cluster(aws)
    # The operator acknowledges while the promotion call is on its way.
    aws.slow_attempt("rds", "PromoteReadReplica", 1, lambda: run("ack", "orders"), fail=False)

    result = failover(alarm_event("eventbridge", aws.clock.now()), context())

    assert result["outcome"] == "complete", result
    state = aws.state()
    assert state.primary == "orders-db-r2" and state.workflow is None
    assert state.acknowledged is not None  # the operator's write is kept, not overwritten


def _slow(aws: Sandbox, service: str, operation: str) -> list[int]:
    # Longer than the lease has left before a renewal is needed, shorter than the lease.
    return aws.slow_attempt(service, operation, LEASE_SECONDS - 20)


@pytest.mark.parametrize("function", ["failover", "reconcile"])
def test_a_failover_slowed_by_aws_renews_its_lease_and_finishes(aws: Sandbox, function: str) -> None:
    build_cluster(aws)
    attempts = _slow(aws, "rds", "PromoteReadReplica")
    if function == "failover":
        result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    else:
        result = reconcile({}, context())["results"][0]  # the alarm's delivery was lost: reconcile acts on it
    assert result["outcome"] == "complete", result
    assert attempts[0] == 2 and aws.state().primary == "orders-db-r2"


def test_a_scaling_run_slowed_by_aws_renews_its_lease_and_finishes(aws: Sandbox) -> None:
    capacity_cluster(aws)
    attempts = _slow(aws, "rds", "CreateDBInstanceReadReplica")
    assert scaling(alarm(aws, "orders-replicas-cpu-high"), context())["outcome"] == "done"
    assert attempts[0] == 2 and len(aws.replicas_of("orders-db")) == 3


def test_a_multi_az_run_slowed_by_aws_renews_its_lease_and_finishes(aws: Sandbox) -> None:
    capacity_cluster(aws)
    attempts = _slow(aws, "rds", "ModifyDBInstance")
    assert multi_az(alarm(aws, "orders-multi-az-on"), context())["outcome"] in {"done", "waiting"}
    assert attempts[0] == 2 and aws.instance("orders-db")["MultiAZ"] is True


def test_an_rds_event_sync_slowed_by_aws_renews_its_lease_and_finishes(aws: Sandbox) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    moto_fidelity.set_status("orders-db-r2", "stopped")
    attempts = _slow(aws, "route53", "ChangeResourceRecordSets")
    dns_sync(samples.rds_event("RDS-EVENT-0087", "orders-db-r2", aws.clock.now()), context())
    assert attempts[0] == 2 and reader_ids(aws) == ["orders-db-r1"]


# -- stale and malformed deliveries ------------------------------------------------------------------


def test_a_stale_delivery_is_decided_on_the_alarms_current_transition(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", None), "orders-db-r2": ("us-east-1c", None)})
    failed_at = aws.clock.now()  # the alarm went into ALARM now (build_cluster set it)
    old = failed_at - timedelta(hours=1)  # an earlier transition: a late retry or a redrive carries its time
    # An hour ago r2 was the better replica; at the real failure r1 is 2 s behind and r2 25 s.
    aws.put_lag("orders-db-r1", 40.0, at=old - timedelta(seconds=30))
    aws.put_lag("orders-db-r2", 2.0, at=old - timedelta(seconds=30))
    aws.put_lag("orders-db-r1", 2.0, at=failed_at - timedelta(seconds=30))
    aws.put_lag("orders-db-r2", 25.0, at=failed_at - timedelta(seconds=30))

    result = failover(alarm_event("sns", old), context())

    assert result["outcome"] == "complete" and result["chosen"] == "orders-db-r1", result
    assert aws.state().primary == "orders-db-r1"
    started = [h["message"] for h in aws.service.history("orders") if h["kind"] == "failover_started"]
    assert len(started) == 1 and f"the event said {old.isoformat(timespec='milliseconds')}" in started[0]


def test_an_evaluation_update_within_alarm_is_not_a_second_transition(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 45.0), "orders-db-r2": ("us-east-1c", None)})
    topic, inbox = aws.subscribe()
    assert failover(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "blocked"
    aws.clock.advance(60)
    aws.cw().set_alarm_state(AlarmName="orders-primary-down", StateValue="ALARM", StateReason="re-evaluated, still breaching")
    reconcile({}, context())
    aws.clock.advance(60)
    reconcile({}, context())
    assert aws.history_kinds().count("failover_blocked") == 1
    assert [m["type"] for m in aws.messages(inbox)].count("failover_blocked") == 1


@pytest.mark.parametrize("shape", ["eventbridge", "sns", "lambda-action"])
def test_a_timestamp_without_utc_offset_is_refused_in_one_line_and_changes_nothing(aws: Sandbox, shape: str) -> None:
    build_cluster(aws)
    event = json.loads(json.dumps(alarm_event(shape, aws.clock.now())).replace("+0000", ""))
    with pytest.raises(InvalidEventError, match="no UTC offset") as raised:
        failover(event, context())
    assert "\n" not in str(raised.value)
    assert aws.promotions() == ["orders-db"] and aws.writer_targets() == [aws.endpoint("orders-db")]


# -- one region's trouble stays in that region -------------------------------------------------------


def _dr_region_down(aws: Sandbox) -> None:
    """A cluster with a replica in us-west-2, then us-west-2's RDS API failing every DescribeDBInstances."""
    build_cluster(aws)
    aws.set_alarm("OK")
    with_cross_region(aws)
    reconcile({}, context())  # creates the us-west-2 replica
    assert len(west_replicas(aws)) == 1
    _fail(aws, "DescribeDBInstances", "ServiceUnavailable", region=WEST)
    moto_fidelity.set_status("orders-db", "failed")
    aws.clock.advance(1)
    aws.set_alarm("ALARM")


@pytest.mark.parametrize("path", ["failover", "reconcile"])
def test_a_dr_regions_outage_does_not_stop_a_local_failover_from_completing(aws: Sandbox, path: str) -> None:
    _dr_region_down(aws)
    if path == "failover":
        result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    else:  # the alarm's delivery was lost: reconcile finds it, and must not fail on the other region first
        result = reconcile({}, context())["results"][0]
    assert result["outcome"] == "complete", result
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    # What could not be seen is not recreated blind: no second replica in us-west-2.
    west = moto_fidelity.backend(WEST).databases
    assert len(west) == 1


def test_reconcile_goes_on_with_every_other_cluster_when_one_region_fails(aws: Sandbox) -> None:
    _dr_region_down(aws)
    aws.set_alarm("OK")
    moto_fidelity.set_status("orders-db", "available")
    _writer_edited_by_hand(aws)
    (result,) = reconcile({}, context())["results"]
    assert result["outcome"] == "steady", result
    assert aws.writer_targets() == [aws.endpoint("orders-db")]  # the drift in the readable region is repaired


# -- a check that cannot run holds nothing up --------------------------------------------------------


def _route53_refuses(aws: Sandbox, operation: str) -> None:
    from botocore.exceptions import ClientError

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded (injected)"}}, operation)

    aws.clients.client("route53", "us-east-1").meta.events.register(f"before-call.route53.{operation}", refuse)


def test_a_failing_testdnsanswer_falls_back_to_the_record_and_the_failover_completes(aws: Sandbox) -> None:
    build_cluster(aws)  # a public zone: TestDNSAnswer is the check
    _route53_refuses(aws, "TestDNSAnswer")
    result = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "complete", result
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")] and aws.state().workflow is None
    (verified,) = [h["message"] for h in aws.service.history("orders") if h["kind"] == "writer_verified"]
    assert "TestDNSAnswer failed" in verified and "verified from the record as Route 53 holds it" in verified


def test_with_getchange_failing_too_the_record_decides_after_route_53s_propagation_time(aws: Sandbox) -> None:
    build_cluster(aws)
    _route53_refuses(aws, "TestDNSAnswer")
    _route53_refuses(aws, "GetChange")
    first = failover(alarm_event("eventbridge", aws.clock.now()), context(timeout=40))
    assert first["outcome"] == "waiting" and "waiting 60s after the writer change" in first["reason"], first
    aws.clock.advance(61)
    assert reconcile({}, context())["results"][0]["outcome"] == "complete"
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


# -- a failure preempts a planned operation ----------------------------------------------------------


def _switchover_while_the_primary_fails(aws: Sandbox, monkeypatch: Any, then: Any = None) -> tuple[int, Any]:
    """`rds-ha switchover orders --yes` waits for its target (r2 lags 2 s > max 1 s); 30 s in, the primary fails and
    is failed over by its alarm in another thread, `then` runs there: the CLI's exit code, and when the failover ended."""
    import threading

    from rds_ha.cli import main as cli

    build_cluster(aws, extra="    switchover: {catch_up_seconds: 3600}\n")
    aws.set_alarm("OK")
    monkeypatch.setattr(cli, "service_factory", lambda settings: aws.service)
    started, ended = aws.clock.now(), []

    def primary_fails_during_the_wait(now: Any) -> None:
        if ended or (now - started).total_seconds() < 30:
            return
        ended.append(None)

        def fail_over() -> None:
            _primary_fails_and_fails_over(aws)
            ended[0] = aws.clock.now()
            if then is not None:
                then()

        other = threading.Thread(target=fail_over)
        other.start()
        other.join()

    stop = aws.clock.watch(primary_fails_during_the_wait)
    try:
        code = run("switchover", "orders", "--yes")
    finally:
        stop()
    assert ended and ended[0] is not None, "the failover did not complete during the switchover's wait"
    return code, (ended[0] - started).total_seconds()


def test_a_primary_failing_while_a_switchover_waits_is_failed_over_at_once(aws: Sandbox, monkeypatch: Any, capsys: Any) -> None:
    code, failed_over_after = _switchover_while_the_primary_fails(aws, monkeypatch)
    assert failed_over_after < 60  # not after the catch-up wait (up to an hour)
    assert code == 3  # the switchover then refuses: a failover moved the primary
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_a_switchover_waiting_when_a_failover_moves_the_primary_switches_nothing_more(aws: Sandbox, monkeypatch: Any, capsys: Any) -> None:
    """As above, and the failover's new replicas report ReplicaLag at once: the waiting switchover must not
    promote one of them (a second primary change nobody asked for; issue 28)."""
    promotes = aws.count_calls("rds", "PromoteReadReplica")

    def new_replicas_report_lag() -> None:
        for replica in aws.replicas_of("orders-db-r2"):
            aws.put_lag(replica["DBInstanceIdentifier"], 0.0, at=aws.clock.now())

    code, _ = _switchover_while_the_primary_fails(aws, monkeypatch, then=new_replicas_report_lag)
    assert promotes[0] == 1, f"{promotes[0]} promotions: the switchover went on after the failover"
    assert code == 3
    assert "the primary changed from orders-db to orders-db-r2" in capsys.readouterr().out
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]


# -- conflicting configuration is refused, naming both clusters ---------------------------------------

SECOND = """\
clusters:
  - name: {name}
    region: us-east-1
    primary: {primary}
    replicas: {{min: 0, max: 2}}
    dns: {{zone_id: {zone}, writer: {writer}}}
    alarms:
      failover: [{alarm}]
"""


def _apply_second(aws: Sandbox, tag_members: bool = False, **kw: str) -> str:
    from rds_ha.core.config import parse_config
    from rds_ha.core.errors import ConfigError

    values = {"name": "shop", "primary": "shop-db", "zone": aws.zone_id, "writer": "shop-writer.orders.example.internal", "alarm": "shop-primary-down"} | kw
    before = sorted(c.name for c in aws.service.clusters())
    with pytest.raises(ConfigError) as refused:
        aws.service.apply(parse_config(SECOND.format(**values), "shop.yaml").clusters, "shop.yaml", "test", tag_members=tag_members)
    assert sorted(c.name for c in aws.service.clusters()) == before  # nothing stored
    return str(refused.value)


def _shop_primary(aws: Sandbox, tagged: bool = True) -> None:
    aws.rds().create_db_instance(
        DBInstanceIdentifier="shop-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="local-moto-only-1",  # noqa: S106 - moto, not a secret
        BackupRetentionPeriod=1,
        Tags=[{"Key": "rds-ha:cluster", "Value": "shop"}] if tagged else [],
    )
    sandbox.put_alarm(aws.clients, "shop-primary-down", "shop-db")  # apply refuses a failover alarm that does not exist


def test_apply_refuses_a_writer_name_another_cluster_owns(aws: Sandbox) -> None:
    build_cluster(aws)
    _shop_primary(aws)
    message = _apply_second(aws, writer="writer.orders.example.internal")
    assert message == "shop.yaml: cluster shop: record name writer.orders.example.internal is already cluster orders's"


def test_apply_refuses_an_alarm_another_cluster_owns(aws: Sandbox) -> None:
    build_cluster(aws)
    _shop_primary(aws)
    assert _apply_second(aws, alarm="orders-primary-down") == "shop.yaml: cluster shop: alarm orders-primary-down is already cluster orders's"


def test_apply_refuses_a_record_name_outside_the_hosted_zone(aws: Sandbox) -> None:
    build_cluster(aws)
    _shop_primary(aws)
    message = _apply_second(aws, writer="writer.shop.example.com")
    assert message.startswith("shop.yaml: cluster shop: writer name writer.shop.example.com is not in hosted zone") and "(orders.example.internal)" in message


def test_apply_refuses_an_instance_that_belongs_to_another_cluster(aws: Sandbox) -> None:
    from rds_ha.core.config import parse_config
    from rds_ha.core.errors import ConfigError

    build_cluster(aws)
    _shop_primary(aws, tagged=False)
    sandbox.put_alarm(aws.clients, "shop2-primary-down", "shop-db")
    both = SECOND.format(name="shop", primary="shop-db", zone=aws.zone_id, writer="shop-writer.orders.example.internal", alarm="shop-primary-down")
    both += SECOND.format(name="shop2", primary="shop-db", zone=aws.zone_id, writer="shop2-writer.orders.example.internal", alarm="shop2-primary-down").split(
        "clusters:\n", 1
    )[1]
    with pytest.raises(ConfigError) as refused:  # untagged, both would be tagged: one instance, two clusters
        aws.service.apply(parse_config(both, "shop.yaml").clusters, "shop.yaml", "test", tag_members=True)
    assert str(refused.value) == "shop.yaml: cluster shop2: shop-db is already a member of cluster shop"
    assert sorted(c.name for c in aws.service.clusters()) == ["orders"]
    assert not aws.instance("shop-db")["TagList"]  # type: ignore[index]


# -- only the cluster's tagged members are acted on ------------------------------------------------------


def test_an_untagged_replica_added_later_is_never_the_candidate(aws: Sandbox) -> None:
    build_cluster(aws)
    # Someone adds a replica by hand, without the tag rds-ha's IAM policy requires; it is the least lagged.
    aws.rds().create_db_instance_read_replica(DBInstanceIdentifier="orders-db-r3", SourceDBInstanceIdentifier="orders-db")
    aws.put_lag("orders-db-r3", 0.5)

    result = failover(alarm_event("eventbridge", aws.clock.now()), context())

    assert result["outcome"] == "complete" and result["chosen"] == "orders-db-r2", result
    (r3,) = [c for c in result["candidates"] if c["instance"] == "orders-db-r3"]
    assert not r3["eligible"] and r3["reason"].startswith("not tagged rds-ha:cluster=orders")
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    # Not rds-ha's to delete either (IAM would refuse it: the delete needs the tag): it is left as it is.
    aws.clock.advance(60)
    reconcile({}, context())
    assert aws.instance("orders-db-r3")["DBInstanceStatus"] == "available"


# -- after a failover, the failover alarms watch the new primary ------------------------------------------


def _math_alarm(aws: Sandbox, name: str, instance: str) -> None:
    """A primary-down alarm in metric math, as infra/protection.yaml builds it (missing metrics count as down)."""
    metric = {"Namespace": "AWS/RDS", "MetricName": "DatabaseConnections", "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance}]}
    aws.cw().put_metric_alarm(
        AlarmName=name,
        AlarmDescription="primary down",
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
        Metrics=[
            {"Id": "conn", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Minimum"}, "ReturnData": False},
            {"Id": "down", "Expression": "FILL(conn, 0)", "Label": "connections", "ReturnData": True},
        ],
    )
    aws.cw().set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")


def _watched(aws: Sandbox, name: str) -> list[str]:
    (alarm,) = aws.cw().describe_alarms(AlarmNames=[name])["MetricAlarms"]
    dims = alarm.get("Dimensions", []) + [d for m in alarm.get("Metrics", []) if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]]
    return [d["Value"] for d in dims if d["Name"] == "DBInstanceIdentifier"]


def test_after_a_failover_the_failover_alarms_watch_the_new_primary_and_a_second_failure_is_seen(aws: Sandbox) -> None:
    build_cluster(aws, alarms=("orders-primary-down", "orders-primary-down-math"))
    _math_alarm(aws, "orders-primary-down-math", "orders-db")
    first = failover(alarm_event("eventbridge", aws.clock.now()), context())
    assert first["outcome"] == "complete" and first["chosen"] == "orders-db-r2", first

    assert _watched(aws, "orders-primary-down") == ["orders-db-r2"]
    assert _watched(aws, "orders-primary-down-math") == ["orders-db-r2"]
    (math,) = aws.cw().describe_alarms(AlarmNames=["orders-primary-down-math"])["MetricAlarms"]
    assert math["StateValue"] == "ALARM" and math["TreatMissingData"] == "breaching" and math["EvaluationPeriods"] == 2  # settings and state kept
    assert "alarms_moved" in aws.history_kinds()

    # The new primary fails after the cooldown: its alarm fires, and it is failed over.
    new = [r["DBInstanceIdentifier"] for r in aws.replicas_of("orders-db-r2")]
    aws.clock.advance(601)
    for rid in new:
        aws.put_lag(rid, 1.0)
    moto_fidelity.set_status("orders-db-r2", "failed")
    aws.set_alarm("OK")
    aws.clock.advance(1)
    aws.set_alarm("ALARM")
    second = failover(alarm_event("eventbridge", aws.clock.now(), instance="orders-db-r2"), context())
    assert second["outcome"] == "complete", second
    assert aws.state().primary in new and _watched(aws, "orders-primary-down") == [aws.state().primary]
