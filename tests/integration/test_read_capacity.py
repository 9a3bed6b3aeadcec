"""Replica scaling, the reader set, RDS events and Multi-AZ end to end on moto: the RDS, Route 53
and state-table state a user would check after each event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rds_ha.handlers.dns_sync import handler as dns_sync
from rds_ha.handlers.multi_az import handler as multi_az
from rds_ha.handlers.reconcile import handler as reconcile
from rds_ha.handlers.scaling import handler as scaling
from rds_ha.local import moto_fidelity, samples
from rds_ha.local.sandbox import put_alarm

from ..builders import Sandbox, alarm_event, build_cluster, context

CAPACITY_ALARMS = """\
      scale_out: [orders-replicas-cpu-high]
      scale_in: [orders-replicas-cpu-low]
      multi_az_on: [orders-multi-az-on]
      multi_az_off: [orders-multi-az-off]
"""


def capacity_cluster(aws: Sandbox, replicas: dict[str, tuple[str, float | None]] | None = None, extra: str = "", **kw: Any) -> None:
    build_cluster(aws, replicas, extra=CAPACITY_ALARMS + extra, **kw)
    aws.set_alarm("OK")  # the primary is healthy in these tests


def alarm(aws: Sandbox, name: str, after: float = 0) -> dict[str, Any]:
    return alarm_event("eventbridge", aws.clock.now() + timedelta(seconds=after), alarm=name, instance="orders-db-r1")


def replica_ids(aws: Sandbox) -> list[str]:
    return sorted(r["DBInstanceIdentifier"] for r in aws.replicas_of("orders-db"))


def reader_ids(aws: Sandbox) -> list[str]:
    sets = aws.r53().list_resource_record_sets(HostedZoneId=aws.zone_id, StartRecordName="reader.orders.example.internal", MaxItems="100")
    return sorted(rs["SetIdentifier"] for rs in sets["ResourceRecordSets"] if rs["Name"] == "reader.orders.example.internal." and "SetIdentifier" in rs)


# -- scaling ---------------------------------------------------------------------------------------


def test_scale_out_adds_one_replica_per_transition_within_cooldown_and_max(aws: Sandbox) -> None:
    capacity_cluster(aws)
    event = alarm(aws, "orders-replicas-cpu-high")
    result = scaling(event, context())
    assert result["outcome"] == "done", result
    added = sorted(set(replica_ids(aws)) - {"orders-db-r1", "orders-db-r2"})
    assert len(added) == 1
    new = aws.instance(added[0])
    assert new is not None and new["DBInstanceClass"] == "db.r6g.large"  # the primary's class
    assert {"Key": "rds-ha:cluster", "Value": "orders"} in new["TagList"]
    assert new["AvailabilityZone"] == "us-east-1a"  # r1 and r2 hold b and c
    # The same transition delivered again changes nothing.
    assert scaling(event, context())["outcome"] == "duplicate"
    # A new transition within the cooldown (900 s) is refused, with the reason recorded.
    refused = scaling(alarm(aws, "orders-replicas-cpu-high", after=60), context())
    assert refused["outcome"] == "refused" and "scale-out cooldown" in refused["reason"]
    assert len(replica_ids(aws)) == 3
    aws.clock.advance(901)
    assert scaling(alarm(aws, "orders-replicas-cpu-high", after=1), context())["outcome"] == "done"
    aws.clock.advance(901)
    at_max = scaling(alarm(aws, "orders-replicas-cpu-high", after=1), context())
    assert at_max["outcome"] == "refused" and at_max["reason"] == "4 replica(s), at replicas.max 4"
    assert len(replica_ids(aws)) == 4
    assert "scale_out_refused" in aws.history_kinds()


def test_scale_in_removes_the_most_lagging_replica_first_from_dns_and_never_goes_below_min(aws: Sandbox) -> None:
    replicas = {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 12.0), "orders-db-r3": ("us-east-1a", 3.0)}
    capacity_cluster(aws, replicas)
    reconcile({}, context())
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2", "orders-db-r3"]
    result = scaling(alarm(aws, "orders-replicas-cpu-low"), context())
    assert result["outcome"] == "done", result
    assert "orders-db-r2 chosen (lag 12s" in result["reason"] and "orders-db-r1 kept as the failover candidate" in result["reason"]
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r3"]
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r3"]
    aws.clock.advance(1801)
    at_min = scaling(alarm(aws, "orders-replicas-cpu-low", after=1), context())
    assert at_min["outcome"] == "refused" and at_min["reason"] == "2 replica(s), at replicas.min 2"
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r3"]


def test_alarm_that_stays_in_alarm_scales_again_once_the_cooldown_allows(aws: Sandbox) -> None:
    capacity_cluster(aws)
    put_alarm(aws.clients, "orders-replicas-cpu-high", "orders-db-r1", "ALARM")
    first = reconcile({}, context())["results"][0]
    assert any(a.startswith("create replica") for a in first.get("actions", [])), first
    assert len(replica_ids(aws)) == 3
    aws.clock.advance(60)
    reconcile({}, context())  # within the cooldown: nothing, and no refusal recorded every minute
    assert len(replica_ids(aws)) == 3
    assert aws.history_kinds().count("scale_out_refused") == 0
    aws.clock.advance(900)
    reconcile({}, context())
    assert len(replica_ids(aws)) == 4


def test_paused_cluster_scaling_records_what_it_would_do_and_changes_nothing(aws: Sandbox) -> None:
    capacity_cluster(aws)
    assert aws.cfg is not None
    aws.service.pause(aws.cfg, "alice", "maintenance")
    result = scaling(alarm(aws, "orders-replicas-cpu-high"), context())
    assert result["outcome"] == "paused" and result["actions"][0].startswith("would create replica")
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r2"]
    assert "scale_out_paused" in aws.history_kinds()
    # The alarm stays in ALARM: reconcile runs past the cooldown change nothing either, and say it once.
    put_alarm(aws.clients, "orders-replicas-cpu-high", "orders-db-r1", "ALARM")
    for _ in range(3):
        aws.clock.advance(1000)
        reconcile({}, context())
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r2"]
    assert aws.history_kinds().count("scale_out_paused") == 1
    # Resumed: the next reconcile acts on the alarm still in ALARM.
    assert aws.cfg is not None
    aws.service.resume(aws.cfg, "alice")
    reconcile({}, context())
    assert len(replica_ids(aws)) == 3


def test_alarm_of_another_role_or_cluster_is_ignored(aws: Sandbox) -> None:
    capacity_cluster(aws)
    assert scaling(alarm(aws, "orders-primary-down"), context())["reason"].endswith("alarms.failover, which another function handles")
    assert scaling(alarm(aws, "unknown-alarm"), context())["reason"] == "alarm unknown-alarm is not mapped to any cluster's alarms"
    assert multi_az(alarm(aws, "orders-replicas-cpu-high"), context())["outcome"] == "ignored"
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r2"]


# -- the reader set ----------------------------------------------------------------------------------


def test_reader_set_is_the_healthy_caught_up_replicas_at_every_step(aws: Sandbox) -> None:
    capacity_cluster(aws, {"orders-db-r1": ("us-east-1b", 2.0), "orders-db-r2": ("us-east-1c", 3.0)})
    reconcile({}, context())
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2"]

    def lag(r1: float, r2: float) -> list[str]:
        aws.clock.advance(60)
        aws.put_lag("orders-db-r1", r1)
        aws.put_lag("orders-db-r2", r2)
        reconcile({}, context())
        return reader_ids(aws)

    assert lag(45, 3) == ["orders-db-r2"]  # r1 above reader_max_lag (30 s): out
    assert lag(20, 3) == ["orders-db-r2"]  # between the limits: stays out (rejoin at 15 s)
    assert lag(10, 3) == ["orders-db-r1", "orders-db-r2"]  # caught up: back
    assert lag(25, 3) == ["orders-db-r1", "orders-db-r2"]  # a member near the limit stays
    assert lag(99, 99) == ["orders-db"]  # none qualifies: the primary serves reads
    status = aws.service.status(aws.cfg).as_dict()  # type: ignore[arg-type]
    assert status["reader_fallback"] and {r["id"]: r["reason"] for r in status["reader_set"]}["orders-db-r1"] == "lag 99s; rejoins at <= 15s"


def test_rds_deleted_event_removes_the_instance_from_dns(aws: Sandbox) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2"]
    aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db-r1", SkipFinalSnapshot=True)  # someone outside rds-ha
    result = dns_sync(samples.rds_event("RDS-EVENT-0003", "orders-db-r1", aws.clock.now()), context())
    assert result["outcome"] == "steady", result
    assert reader_ids(aws) == ["orders-db-r2"]
    # Deleted events carry no tags sometimes: the cluster is found from the state and records anyway.
    aws.rds().delete_db_instance(DBInstanceIdentifier="orders-db-r2", SkipFinalSnapshot=True)
    dns_sync(samples.rds_event("RDS-EVENT-0003", "orders-db-r2", aws.clock.now(), tags={}), context())
    assert aws.reader_targets() == [aws.endpoint("orders-db")]


def test_stopped_instance_leaves_dns_and_returns_when_started(aws: Sandbox) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    moto_fidelity.set_status("orders-db-r2", "stopped")
    dns_sync(samples.rds_event("RDS-EVENT-0087", "orders-db-r2", aws.clock.now()), context())
    assert reader_ids(aws) == ["orders-db-r1"]
    moto_fidelity.set_status("orders-db-r2", "available")
    aws.clock.advance(60)
    aws.put_lag("orders-db-r2", 1.0)
    dns_sync(samples.rds_event("RDS-EVENT-0088", "orders-db-r2", aws.clock.now()), context())
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2"]


def test_replication_stopped_event_takes_the_replica_out_until_it_resumes(aws: Sandbox) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    stopped_at = aws.clock.now()
    dns_sync(samples.rds_event("RDS-EVENT-0045", "orders-db-r1", stopped_at), context())
    assert reader_ids(aws) == ["orders-db-r2"]
    # A resume older than the stop (events come out of order) changes nothing.
    dns_sync(samples.rds_event("RDS-EVENT-0046", "orders-db-r1", stopped_at - timedelta(minutes=2)), context())
    assert reader_ids(aws) == ["orders-db-r2"]
    aws.clock.advance(120)
    aws.put_lag("orders-db-r1", 1.0)
    dns_sync(samples.rds_event("RDS-EVENT-0046", "orders-db-r1", aws.clock.now()), context())
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2"]
    assert aws.state().replication_stopped == {}


def test_rds_event_for_an_unknown_instance_or_event_changes_nothing(aws: Sandbox) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    other = dns_sync(samples.rds_event("RDS-EVENT-0003", "someone-elses-db", aws.clock.now(), tags={}), context())
    assert other["outcome"] == "ignored" and "not a member of any cluster" in other["reason"]
    backup = dns_sync(samples.rds_event("RDS-EVENT-0002", "orders-db", aws.clock.now()), context())
    assert backup["outcome"] == "ignored" and "not an event rds-ha acts on" in backup["reason"]
    assert reader_ids(aws) == ["orders-db-r1", "orders-db-r2"]


def test_rds_events_during_a_failover_leave_the_workflow_to_its_runs(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.fidelity.promote_seconds = 300
    from rds_ha.handlers.failover import handler as failover

    assert failover(alarm_event("eventbridge", aws.clock.now()), context(timeout=30))["outcome"] == "waiting"
    result = dns_sync(samples.rds_event("RDS-EVENT-0045", "orders-db-r1", aws.clock.now()), context())
    assert result["outcome"] == "waiting" and "in progress" in result["reason"]


# -- Multi-AZ --------------------------------------------------------------------------------------


def primary_multi_az(aws: Sandbox, instance: str = "orders-db") -> bool:
    inst = aws.instance(instance)
    assert inst is not None
    return bool(inst["MultiAZ"])


def test_multi_az_alarm_turns_it_on_and_it_stays_the_desired_state(aws: Sandbox) -> None:
    capacity_cluster(aws)
    assert not primary_multi_az(aws)
    result = multi_az(alarm(aws, "orders-multi-az-on"), context())
    assert result["outcome"] == "done", result
    assert "standby from it" in result["reason"]
    assert primary_multi_az(aws)
    assert aws.state().multi_az.enabled and aws.state().multi_az.by.startswith("alarm orders-multi-az-on")
    # Someone turns it off by hand: reconcile restores the desired state.
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", MultiAZ=False, ApplyImmediately=True)
    reconcile({}, context())
    assert primary_multi_az(aws)
    off = multi_az(alarm(aws, "orders-multi-az-off", after=5), context())
    assert off["outcome"] == "done" and not primary_multi_az(aws)


def test_multi_az_from_the_config_is_enforced_by_reconcile_and_follows_a_failover(aws: Sandbox) -> None:
    build_cluster(aws, extra="    multi_az: true\n")
    aws.set_alarm("OK")
    reconcile({}, context())
    assert primary_multi_az(aws)
    # The primary fails and the replica promoted is single-AZ: reconcile sets Multi-AZ on it.
    aws.set_alarm("ALARM")
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", MultiAZ=False, ApplyImmediately=True)  # grace period not in play
    from rds_ha.handlers.failover import handler as failover

    alarm_at = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]["StateUpdatedTimestamp"]
    assert failover(alarm_event("eventbridge", alarm_at), context())["outcome"] == "complete"
    assert not primary_multi_az(aws, "orders-db-r2")
    reconcile({}, context())
    assert primary_multi_az(aws, "orders-db-r2")


@pytest.mark.parametrize("event_id", ["RDS-EVENT-0049"])
def test_multi_az_failover_event_resyncs_without_touching_the_writer(aws: Sandbox, event_id: str) -> None:
    capacity_cluster(aws)
    reconcile({}, context())
    writer = aws.writer_targets()
    assert dns_sync(samples.rds_event(event_id, "orders-db", aws.clock.now()), context())["outcome"] == "steady"
    assert aws.writer_targets() == writer


# -- notifications and AWS errors -------------------------------------------------------------------


def test_capacity_changes_and_refusals_are_notified(aws: Sandbox) -> None:
    capacity_cluster(aws)
    _, queue = aws.subscribe()
    multi_az(alarm(aws, "orders-multi-az-on"), context())
    scaling(alarm(aws, "orders-replicas-cpu-low"), context())  # at min: refused
    messages = aws.messages(queue)
    assert [m["type"] for m in messages] == ["multi_az_changed", "scale_in_refused"]
    assert messages[0]["enabled"] is True and messages[1]["message"] == "2 replica(s), at replicas.min 2"


def test_aws_error_during_an_rds_event_sync_is_recorded_and_notified(aws: Sandbox) -> None:
    capacity_cluster(aws)
    _, queue = aws.subscribe()
    from botocore.exceptions import ClientError

    def throttled(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "ListResourceRecordSets")

    aws.clients.client("route53", "us-east-1").meta.events.register("before-call.route53.ListResourceRecordSets", throttled)
    result = dns_sync(samples.rds_event("RDS-EVENT-0087", "orders-db-r2", aws.clock.now()), context())
    assert result["outcome"] == "error" and "Throttling" in result["error"]
    assert [m["type"] for m in aws.messages(queue)] == ["aws_error"]
    assert "aws_error" in aws.history_kinds()


# -- cross-region replicas --------------------------------------------------------------------------

WEST = "us-west-2"


def with_cross_region(aws: Sandbox, allow: bool = False) -> None:
    """The built cluster re-applied with one replica kept in us-west-2 (and, if `allow`, promotable)."""
    from rds_ha.core.config import ClusterConfig

    assert aws.cfg is not None
    data = aws.cfg.model_dump()
    data["replicas"]["cross_region"] = [{"region": WEST, "count": 1, "kms_key_id": "alias/rds-dr"}]
    data["failover"]["allow_cross_region"] = allow
    aws.cfg = ClusterConfig.model_validate(data)
    aws.service.apply([aws.cfg], "orders.yaml", "test")


def west_replicas(aws: Sandbox) -> list[dict[str, Any]]:
    return aws.clients.client("rds", WEST).describe_db_instances()["DBInstances"]


def test_cross_region_replica_is_created_in_the_destination_region_from_the_source_arn(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.set_alarm("OK")
    with_cross_region(aws)
    sent: list[dict[str, Any]] = []
    aws.clients.client("rds", WEST).meta.events.register("before-call.rds.CreateDBInstanceReadReplica", lambda params, **_: sent.append(dict(params["body"])))
    reconcile({}, context())
    (replica,) = west_replicas(aws)
    primary_arn = aws.instance("orders-db")["DBInstanceArn"]  # type: ignore[index]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary_arn
    assert {"Key": "rds-ha:cluster", "Value": "orders"} in replica["TagList"]
    (call,) = sent
    assert call["SourceDBInstanceIdentifier"] == primary_arn and call["KmsKeyId"] == "alias/rds-dr"
    assert "PreSignedUrl" in call  # boto3 presigned it in the source region (SourceRegion=us-east-1)
    assert "us-east-1" in call["PreSignedUrl"]
    # One is enough: the next reconcile creates none, and the remote replica stays out of the reader set.
    reconcile({}, context())
    assert len(west_replicas(aws)) == 1
    assert aws.endpoint("orders-db-r1") in aws.reader_targets() and replica["Endpoint"]["Address"] not in aws.reader_targets()


def _remote_is_the_only_caught_up_replica(aws: Sandbox, allow: bool) -> str:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 99.0)}, min_replicas=1)
    arn = aws.instance("orders-db")["DBInstanceArn"]  # type: ignore[index]
    aws.clients.client("rds", WEST).create_db_instance_read_replica(
        DBInstanceIdentifier="orders-db-west", SourceDBInstanceIdentifier=arn, SourceRegion="us-east-1", Tags=[{"Key": "rds-ha:cluster", "Value": "orders"}]
    )
    aws.put_lag("orders-db-west", 2.0, region=WEST)
    with_cross_region(aws, allow=allow)
    from rds_ha.handlers.failover import handler as failover

    alarm_at = aws.cw().describe_alarms(AlarmNames=["orders-primary-down"])["MetricAlarms"][0]["StateUpdatedTimestamp"]
    return str(failover(alarm_event("eventbridge", alarm_at), context())["outcome"])


def test_cross_region_replica_is_not_promoted_unless_the_config_allows_it(aws: Sandbox) -> None:
    assert _remote_is_the_only_caught_up_replica(aws, allow=False) == "blocked"
    blocked = aws.state().blocked
    assert "orders-db-west: in us-west-2, another region (failover.allow_cross_region is off)" in blocked.reason
    assert aws.writer_targets() == [aws.endpoint("orders-db")]


def test_allowed_cross_region_failover_moves_the_writer_across_regions(aws: Sandbox) -> None:
    assert _remote_is_the_only_caught_up_replica(aws, allow=True) == "complete"
    west = {i["DBInstanceIdentifier"]: i for i in west_replicas(aws)}
    assert not west["orders-db-west"].get("ReadReplicaSourceDBInstanceIdentifier")
    assert aws.writer_targets() == [west["orders-db-west"]["Endpoint"]["Address"]]
    state = aws.state()
    assert state.primary == "orders-db-west" and state.primary_region == WEST and "orders-db" in state.fenced
    assert "alarms_not_moved" in aws.history_kinds()  # the failover alarms live in us-east-1: said, not re-pointed
    # Redundancy is rebuilt next to the new primary, in its region.
    assert [i for i in west.values() if i.get("ReadReplicaSourceDBInstanceIdentifier") == "orders-db-west"]
    assert reconcile({}, context())["results"][0]["outcome"] == "steady"


# -- AWS faults and crashes -------------------------------------------------------------------------


def _fail(aws: Sandbox, operation: str, code: str, region: str = "us-east-1") -> Any:
    """Make every `operation` call fail with `code` (after botocore's retries); returns the undo."""
    from botocore.exceptions import ClientError

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": f"{code} (injected)"}}, operation)

    events = aws.clients.client("rds", region).meta.events
    events.register(f"before-call.rds.{operation}", refuse)
    return lambda: events.unregister(f"before-call.rds.{operation}", refuse)


@pytest.mark.parametrize("code", ["InvalidDBInstanceState", "Throttling", "InsufficientDBInstanceCapacity"])
def test_scale_out_refused_by_aws_is_recorded_and_does_not_start_the_cooldown(aws: Sandbox, code: str) -> None:
    capacity_cluster(aws)
    _fail(aws, "CreateDBInstanceReadReplica", code)
    result = scaling(alarm(aws, "orders-replicas-cpu-high"), context())
    assert result["outcome"] == "error" and code in result["error"]
    assert replica_ids(aws) == ["orders-db-r1", "orders-db-r2"]
    state = aws.state()
    assert state.last_scale_out_at is None and "orders-replicas-cpu-high" not in state.handled_alarms
    assert "step_failed" in aws.history_kinds()


def test_scale_in_delete_refused_by_aws_leaves_a_consistent_state(aws: Sandbox) -> None:
    capacity_cluster(aws, {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1a", 3.0)})
    _fail(aws, "DeleteDBInstance", "InvalidDBInstanceState")
    result = scaling(alarm(aws, "orders-replicas-cpu-low"), context())
    assert result["outcome"] == "done"  # the reader change went through; the delete is recorded as failed
    assert len(replica_ids(aws)) == 3
    assert aws.state().last_scale_in_at is None
    assert "step_failed" in aws.history_kinds()


def test_multi_az_change_refused_by_aws_is_retried_by_reconcile(aws: Sandbox) -> None:
    capacity_cluster(aws)
    undo = _fail(aws, "ModifyDBInstance", "InvalidDBInstanceState")
    result = multi_az(alarm(aws, "orders-multi-az-on"), context())
    assert not primary_multi_az(aws) and aws.state().multi_az.enabled  # desired recorded, not yet applied
    assert "step_failed" in aws.history_kinds() and result["outcome"] == "done"
    undo()
    reconcile({}, context())
    assert primary_multi_az(aws)


@pytest.mark.parametrize("crash_after", [1, 2])
def test_crash_after_any_scale_out_step_never_adds_a_second_replica(aws: Sandbox, crash_after: int) -> None:
    capacity_cluster(aws)
    event = alarm(aws, "orders-replicas-cpu-high")
    aws.crash_after(crash_after, lambda: scaling(event, context()))
    aws.clock.advance(400)  # the lease expires; EventBridge redelivers the same event
    again = scaling(event, context())
    assert again["outcome"] in {"duplicate", "refused"}, again
    assert len(replica_ids(aws)) == 3


def test_apply_keeps_a_multi_az_choice_until_the_file_changes_multi_az(aws: Sandbox) -> None:
    capacity_cluster(aws)
    assert aws.cfg is not None
    multi_az(alarm(aws, "orders-multi-az-on"), context())
    notes = aws.service.apply([aws.cfg], "orders.yaml", "bob")
    assert any("stays on as chosen by alarm orders-multi-az-on" in n for n in notes)
    assert aws.state().multi_az is not None
    changed = aws.cfg.model_copy(update={"multi_az": False})
    notes = aws.service.apply([changed], "orders.yaml", "bob")
    assert any("multi_az is now the file's (False)" in n for n in notes)
    assert aws.state().multi_az is None
    reconcile({}, context())
    assert not primary_multi_az(aws)


def test_twenty_concurrent_deliveries_of_a_scaling_alarm_add_one_replica(aws: Sandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    capacity_cluster(aws)
    event = alarm(aws, "orders-replicas-cpu-high")
    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = [r["outcome"] for r in pool.map(lambda _: scaling(event, context()), range(20))]
    assert outcomes.count("done") == 1 and set(outcomes) <= {"done", "duplicate", "busy"}, outcomes
    assert len(replica_ids(aws)) == 3


SCALING_CALLS = [
    ("rds", "DescribeDBInstances", "Throttling"),
    ("cloudwatch", "GetMetricData", "Throttling"),
    ("route53", "ListResourceRecordSets", "Throttling"),
    ("route53", "ChangeResourceRecordSets", "PriorRequestNotComplete"),
    ("rds", "DeleteDBInstance", "InvalidDBInstanceState"),
]


@pytest.mark.parametrize(("service", "operation", "code"), SCALING_CALLS)
def test_scale_in_call_that_keeps_failing_never_leaves_dns_naming_a_deleted_replica(aws: Sandbox, service: str, operation: str, code: str) -> None:
    from .test_aws_faults import Fault

    replicas = {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1a", 3.0)}
    capacity_cluster(aws, replicas)
    reconcile({}, context())
    put_alarm(aws.clients, "orders-replicas-cpu-low", "orders-db-r1", "ALARM")
    fault = Fault(aws, service, operation, code, times=10**6)
    result = scaling(alarm(aws, "orders-replicas-cpu-low"), context())  # no exception escapes
    fault.clear()
    assert fault.injected >= 1 and result["outcome"] in {"error", "done"}, result
    assert {"aws_error", "step_failed"} & set(aws.history_kinds())
    existing = set(replica_ids(aws)) | {"orders-db"}
    assert set(reader_ids(aws)) <= existing, "a reader record names a deleted replica"
    # The fault is over and the alarm still in ALARM: reconcile removes exactly one replica.
    reconcile({}, context())
    assert len(replica_ids(aws)) == 2
    assert set(reader_ids(aws)) <= set(replica_ids(aws))


def test_a_sweep_lists_a_shared_hosted_zone_once_and_still_repairs_each_clusters_records(aws: Sandbox) -> None:
    from rds_ha.core.config import parse_config
    from rds_ha.local import sandbox

    configs = parse_config(sandbox.create_fleet(aws.clients, 6, aws.clock.now())).clusters
    aws.service.apply(configs, "fleet.yaml", "test")
    aws.service.reconcile(None, aws.clock.now())  # builds every reader set
    zone = configs[0].dns.zone_id
    aws.r53().change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "writer.c2.example.internal.",
                        "Type": "CNAME",
                        "TTL": 5,
                        "ResourceRecords": [{"Value": "elsewhere.example"}],
                    },
                }
            ]
        },
    )
    listings = aws.count_calls("route53", "ListResourceRecordSets")
    aws.clock.advance(60)
    results = aws.service.reconcile(None, aws.clock.now())

    assert listings[0] == 1  # one page lists all 12 names of the six clusters (not 12 reads)
    writer = aws.r53().list_resource_record_sets(HostedZoneId=zone, StartRecordName="writer.c2.example.internal.", StartRecordType="CNAME", MaxItems="1")
    assert writer["ResourceRecordSets"][0]["ResourceRecords"][0]["Value"] == aws.endpoint("c2-db")
    assert {r.cluster: r.reason for r in results} == {f"c{n}": "DNS drifted" if n == 2 else "in sync" for n in range(6)}


def test_a_large_zone_shared_by_few_clusters_is_read_by_name(aws: Sandbox) -> None:
    from rds_ha.core.config import parse_config
    from rds_ha.local import sandbox

    configs = parse_config(sandbox.create_fleet(aws.clients, 2, aws.clock.now())).clusters
    aws.service.apply(configs, "fleet.yaml", "test")
    zone = configs[0].dns.zone_id
    other = [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": f"host{n}.example.internal.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.0.0.1"}]}}
        for n in range(700)
    ]
    aws.r53().change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": other})
    listings = aws.count_calls("route53", "ListResourceRecordSets")
    aws.service.reconcile(None, aws.clock.now())
    # 3 pages of the zone would cost more than the 4 names' own reads: read by name (4 calls; reader creation reads again).
    assert 4 <= listings[0] <= 8


@pytest.mark.parametrize("crash_after", [1, 2])  # the ModifyDBInstance call, then recording the choice
def test_crash_after_any_multi_az_step_changes_the_primary_once(aws: Sandbox, crash_after: int) -> None:
    capacity_cluster(aws)
    event = alarm(aws, "orders-multi-az-on")
    modifies = aws.count_calls("rds", "ModifyDBInstance")
    aws.crash_after(crash_after, lambda: multi_az(event, context()))
    aws.clock.advance(400)  # the lease expires; EventBridge redelivers the same event
    again = multi_az(event, context())
    reconcile({}, context())
    assert again["outcome"] in {"duplicate", "refused", "done", "steady"}, again
    assert primary_multi_az(aws) and aws.state().multi_az is not None and aws.state().multi_az.enabled
    assert modifies[0] == 1, f"ModifyDBInstance called {modifies[0]} times"
