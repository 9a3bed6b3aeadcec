"""Notifications (SNS) and metrics (EMF) a failover produces, and malformed events at the handler."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from rds_ha.core.errors import InvalidEventError
from rds_ha.handlers.failover import handler

from ..builders import Sandbox, alarm_event, build_cluster, context


def test_failover_publishes_started_and_completed(aws: Sandbox) -> None:
    build_cluster(aws)
    _, queue = aws.subscribe()
    handler(alarm_event("sns", aws.clock.now()), context())
    messages = aws.messages(queue)
    assert [m["type"] for m in messages] == ["failover_started", "failover_completed"]
    done = messages[1]
    assert (done["cluster"], done["old_primary"], done["new_primary"], done["unplanned"]) == ("orders", "orders-db", "orders-db-r2", True)


def test_blocked_failover_is_notified_with_the_reason(aws: Sandbox) -> None:
    build_cluster(aws, {"orders-db-r1": ("us-east-1b", 99.0)})
    _, queue = aws.subscribe()
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    (msg,) = aws.messages(queue)
    assert msg["type"] == "failover_blocked"
    assert "orders-db-r1: lag 99s > max 30s" in msg["message"]


def test_failover_emits_emf_metrics_per_cluster(aws: Sandbox, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    build_cluster(aws)
    handler(alarm_event("eventbridge", aws.clock.now()), context())
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for r in records for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"FailoverStarted", "WriterMoved", "ReplicaCreated", "FailoverCompleted", "FailoverSeconds"} <= names
    assert all(r["cluster"] == "orders" and r["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "rds-ha" for r in records)


@pytest.mark.parametrize("event", [{"detail-type": "CloudWatch Alarm State Change"}, {"Records": [{}]}, "text"])
def test_handler_raises_on_malformed_events_and_changes_nothing(aws: Sandbox, event: Any) -> None:
    build_cluster(aws)
    with pytest.raises(InvalidEventError):
        handler(event, context())
    assert aws.promotions() == ["orders-db"]
    assert aws.history_kinds() == ["config_applied"]


def test_stop_old_primary_option_stops_it_once_nothing_replicates_from_it(aws: Sandbox) -> None:
    build_cluster(aws, extra_failover=", stop_old_primary: true")
    result = handler(alarm_event("eventbridge", aws.clock.now()), context())
    assert result["outcome"] == "complete"
    old = aws.instance("orders-db")
    assert old is not None and old["DBInstanceStatus"] == "stopped"  # stopped, never deleted
    assert aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_reconcile_finishes_a_long_failover_notifies_and_stops_the_old_primary(aws: Sandbox) -> None:
    from rds_ha.handlers.reconcile import handler as reconcile_handler

    build_cluster(aws, extra_failover=", stop_old_primary: true")
    _, queue = aws.subscribe()
    aws.fidelity.promote_seconds, aws.fidelity.create_replica_seconds = 300, 900
    assert handler(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "waiting"
    for _ in range(30):
        aws.clock.advance(60)
        reconcile_handler({}, context())
        if aws.state().workflow is None:
            break
    assert [m["type"] for m in aws.messages(queue)] == ["failover_started", "failover_completed"]
    old = aws.instance("orders-db")
    assert old is not None and old["DBInstanceStatus"] == "stopped"


# -- a stopped old primary, as RDS has it (issue 29) ---------------------------------------------------------------


def _protected_primary_failed_over_and_stopped(aws: Sandbox) -> None:
    """orders-db has deletion protection (as every primary rds-ha promoted has); it fails over and is stopped."""
    build_cluster(aws, extra_failover=", stop_old_primary: true")
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", DeletionProtection=True, ApplyImmediately=True)
    assert handler(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    old = aws.instance("orders-db")
    assert old is not None and old["DBInstanceStatus"] == "stopped"


def test_a_stopped_old_primary_can_still_be_retired(aws: Sandbox) -> None:
    """RDS cannot modify a stopped instance (User Guide), so deletion protection is lifted before the stop: retire's
    final snapshot and delete then work (before: refused forever)."""
    _protected_primary_failed_over_and_stopped(aws)
    assert aws.instance("orders-db")["DeletionProtection"] is False  # type: ignore[index]
    with pytest.raises(aws.rds().exceptions.ClientError, match="stopped"):  # what RDS answers
        aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", DeletionProtection=True, ApplyImmediately=True)
    assert aws.cfg is not None
    result = aws.service.capacity.retire(aws.cfg, "orders-db", "oncall", aws.clock.now() + timedelta(seconds=60))
    assert result.outcome == "done", result
    assert aws.instance("orders-db") is None
    snapshots = aws.rds().describe_db_snapshots()["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].split("-retired-")[0] for s in snapshots if "-retired-" in s["DBSnapshotIdentifier"]] == ["orders-db"]


def test_an_old_primary_rds_starts_again_after_seven_days_is_stopped_again(aws: Sandbox) -> None:
    """API reference, StopDBInstance: 'The instance restarts automatically after 7 days.' With stop_old_primary the
    fenced old primary is stopped again by the next reconcile (before: left running, writable)."""
    from rds_ha.handlers.reconcile import handler as reconcile_handler

    _protected_primary_failed_over_and_stopped(aws)
    aws.set_alarm("OK")
    aws.clock.advance(7 * 24 * 3600 + 60)
    assert aws.instance("orders-db")["DBInstanceStatus"] == "available"  # type: ignore[index] # RDS started it
    reconcile_handler({}, context())
    assert aws.instance("orders-db")["DBInstanceStatus"] == "stopped"  # type: ignore[index]
    assert aws.history_kinds().count("old_primary_stopped") == 2
    assert aws.state().primary == "orders-db-r2" and aws.writer_targets() == [aws.endpoint("orders-db-r2")]


def test_rds_stops_no_instance_that_has_read_replicas(aws: Sandbox) -> None:
    build_cluster(aws)
    with pytest.raises(aws.rds().exceptions.ClientError, match="read replicas"):
        aws.rds().stop_db_instance(DBInstanceIdentifier="orders-db")
    with pytest.raises(aws.rds().exceptions.ClientError, match="is a read replica"):
        aws.rds().stop_db_instance(DBInstanceIdentifier="orders-db-r1")


def test_reconcile_retires_a_stopped_old_primary_whose_snapshot_takes_its_tags(aws: Sandbox) -> None:
    """failover.retain_fenced_hours on a stopped old primary with CopyTagsToSnapshot (as every replica rds-ha creates
    has): its final snapshot is tagged as the caller, which IAM authorizes as rds:AddTagsToResource (tests/authz.py)."""
    from rds_ha.handlers.reconcile import handler as reconcile_handler

    build_cluster(aws, extra_failover=", stop_old_primary: true, retain_fenced_hours: 1")
    aws.rds().modify_db_instance(DBInstanceIdentifier="orders-db", CopyTagsToSnapshot=True, DeletionProtection=True, ApplyImmediately=True)
    assert handler(alarm_event("eventbridge", aws.clock.now()), context())["outcome"] == "complete"
    aws.set_alarm("OK")
    aws.clock.advance(3600 + 60)
    reconcile_handler({}, context())
    assert aws.instance("orders-db") is None and "retired" in aws.history_kinds()
