"""Notifications (SNS) and metrics (EMF) a failover produces, and malformed events at the handler."""

from __future__ import annotations

import json
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
