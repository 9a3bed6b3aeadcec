"""FailoverFunction end to end on moto: RDS, Route 53 and the state table after each event."""

from __future__ import annotations

import pytest

from rds_ha.handlers.failover import handler
from rds_ha.handlers.reconcile import handler as reconcile_handler

from ..builders import Sandbox, alarm_event, build_cluster, context

SHAPES = ["eventbridge", "sns", "lambda-action"]


@pytest.mark.parametrize("shape", SHAPES)
def test_primary_down_alarm_promotes_least_lagged_replica_and_moves_writer(aws: Sandbox, shape: str) -> None:
    build_cluster(aws)  # r1 lags 12 s, r2 lags 2 s
    old_writer = aws.endpoint("orders-db")

    result = handler(alarm_event(shape, aws.clock.now()), context())

    assert result["outcome"] == "complete", result
    assert result["chosen"] == "orders-db-r2"
    assert not aws.instance("orders-db-r2").get("ReadReplicaSourceDBInstanceIdentifier")
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]
    assert old_writer not in aws.reader_targets()
    # The old primary is fenced (tagged, never deleted) and out of every record.
    old = aws.instance("orders-db")
    assert old is not None
    assert any(t["Key"] == "rds-ha:fenced" for t in old["TagList"])
    # Redundancy rebuilt to replicas.min from the new primary; the orphan r1 is gone.
    new_replicas = [i for i in aws.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == "orders-db-r2"]
    assert len(new_replicas) == 2
    assert all(any(t == {"Key": "rds-ha:cluster", "Value": "orders"} for t in r["TagList"]) for r in new_replicas)
    assert aws.instance("orders-db-r1") is None
    # Reads go to the new primary until CloudWatch shows a new replica caught up; then to the replicas.
    assert aws.reader_targets() == [aws.endpoint("orders-db-r2")]
    for replica in new_replicas:
        aws.put_lag(replica["DBInstanceIdentifier"], 1.0)
    reconcile_handler({}, context())
    assert aws.reader_targets() == sorted(r["Endpoint"]["Address"] for r in new_replicas)
    state = aws.state()
    assert state.primary == "orders-db-r2"
    assert state.workflow is None
    assert "orders-db" in state.fenced
    kinds = aws.history_kinds()
    assert "failover_started" in kinds and "failover_completed" in kinds


def test_new_replicas_avoid_the_failed_primarys_az(aws: Sandbox) -> None:
    build_cluster(aws, primary_az="us-east-1a")
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    azs = [i["AvailabilityZone"] for i in aws.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == "orders-db-r2"]
    assert "us-east-1a" not in azs
    assert len(set(azs)) == len(azs)


@pytest.mark.parametrize("shape", SHAPES)
def test_lag_guard_blocks_and_records_why(aws: Sandbox, shape: str) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 45.0), "orders-db-r2": ("us-east-1c", None)})

    result = handler(alarm_event(shape, aws.clock.now()), context())

    assert result["outcome"] == "blocked"
    assert aws.promotions() == ["orders-db"]
    assert aws.writer_targets() == [aws.endpoint("orders-db")]
    state = aws.state()
    assert state.blocked is not None
    assert "orders-db-r1: lag 45s > max 30s" in state.blocked.reason
    assert "orders-db-r2: no ReplicaLag data" in state.blocked.reason
    assert aws.history_kinds()[0] == "failover_blocked"


def test_never_promote_tag_and_unavailable_replicas_are_skipped(aws: Sandbox) -> None:
    build_cluster(
        aws,
        {"orders-db-r1": ("us-east-1b", 1.0), "orders-db-r2": ("us-east-1c", 2.0), "orders-db-r3": ("us-east-1b", 20.0)},
        tags={"orders-db-r1": {"rds-ha:never-promote": "true"}},
    )
    from rds_ha.local.moto_fidelity import set_status

    set_status("orders-db-r2", "backing-up")
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["chosen"] == "orders-db-r3"
    reasons = {c["instance"]: c["reason"] for c in result["candidates"]}
    assert reasons["orders-db-r1"] == "tagged rds-ha:never-promote"
    assert reasons["orders-db-r2"] == "status backing-up"


@pytest.mark.parametrize("shape", SHAPES)
def test_ok_transition_changes_nothing(aws: Sandbox, shape: str) -> None:
    build_cluster(aws)
    result = handler(alarm_event(shape, aws.clock.now(), state="OK", previous="ALARM"), context())
    assert result["outcome"] == "ignored"
    assert aws.promotions() == ["orders-db"]
    assert aws.writer_targets() == [aws.endpoint("orders-db")]


@pytest.mark.parametrize("shape", SHAPES)
def test_alarm_of_no_cluster_changes_nothing(aws: Sandbox, shape: str) -> None:
    build_cluster(aws)
    result = handler(alarm_event(shape, aws.clock.now(), alarm="billing-cpu-high"), context())
    assert result["outcome"] == "ignored"
    assert "not mapped" in result["reason"]
    assert aws.promotions() == ["orders-db"]


def test_alarm_back_to_ok_before_we_act_changes_nothing(aws: Sandbox) -> None:
    build_cluster(aws)
    aws.set_alarm("OK")
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "ignored"
    assert "is OK now" in result["reason"]
    assert aws.promotions() == ["orders-db"]


def test_alarm_about_an_instance_that_is_not_the_primary_is_ignored(aws: Sandbox) -> None:
    build_cluster(aws)
    result = handler(alarm_event("eventbridge", aws.clock.now(), instance="orders-db-r1"), context())
    assert result["outcome"] == "ignored"
    assert "not the primary" in result["reason"]
    assert aws.promotions() == ["orders-db"]


@pytest.mark.parametrize("shape", SHAPES)
def test_duplicate_delivery_acts_once(aws: Sandbox, shape: str) -> None:
    build_cluster(aws)
    event = alarm_event(shape, aws.clock.now())
    first = handler(event, context())
    second = handler(event, context())
    assert first == second  # the stored result of the first delivery
    assert aws.promotions() == ["orders-db", "orders-db-r2"]
    assert aws.history_kinds().count("failover_started") == 1


def test_same_transition_in_two_shapes_acts_once(aws: Sandbox) -> None:
    build_cluster(aws)
    now = aws.clock.now()
    handler(alarm_event("eventbridge", now), context())
    handler(alarm_event("sns", now), context())
    assert aws.history_kinds().count("failover_started") == 1


def test_second_failover_within_cooldown_is_refused_and_recorded(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 3.0), "orders-db-r2": ("us-east-1c", 2.0)}, min_replicas=2)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert aws.state().primary == "orders-db-r2"
    # The new primary "fails" too, five minutes later: a flapping alarm, within cooldown.
    aws.clock.advance(300)
    for rid in [
        i["DBInstanceIdentifier"] for i in aws.rds().describe_db_instances()["DBInstances"] if i.get("ReadReplicaSourceDBInstanceIdentifier") == "orders-db-r2"
    ]:
        aws.put_lag(rid, 1.0)
    aws.set_alarm("OK")
    aws.set_alarm("ALARM")
    result = handler(alarm_event("eventbridge", aws.clock.now(), instance="orders-db-r2"), context())
    assert result["outcome"] == "refused"
    assert "cooldown" in result["reason"]
    assert aws.state().primary == "orders-db-r2"
    assert aws.history_kinds()[0] == "failover_refused"
